"""Every Celery app is built from the settings, naming the priority steps publishers and workers share."""

from __future__ import annotations

from broker.app import new_celery_app
from broker.names import PRIORITY_STEPS


def test_the_app_uses_the_settings_broker_and_every_priority_step(make_settings):
    settings = make_settings()
    app = new_celery_app("unit", settings)
    assert app.conf.broker_url == settings.effective_redis_url
    assert app.conf.broker_transport_options["priority_steps"] == sorted(PRIORITY_STEPS.values())
