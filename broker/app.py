"""Every Celery app of this project is built here, so publishers and consumers agree on the queue's layout."""

from __future__ import annotations

from celery import Celery

import celeryconfig
from broker.kombu_redis import broker_transport_options, broker_url, broker_use_ssl
from broker.names import PRIORITY_STEPS
from core.settings import Settings


def new_celery_app(name: str, settings: Settings, *, include: list[str] | None = None) -> Celery:
    """A Celery app configured from celeryconfig, the settings and the GPU queue's priority steps."""
    app = Celery(name, include=include or [])
    celeryconfig.apply_settings(app, settings)
    # With REDIS_SENTINELS, kombu's sentinel transport finds the master (and finds it again after a failover).
    app.conf.broker_url = broker_url(settings)
    if (tls := broker_use_ssl(settings)) is not None:
        app.conf.broker_use_ssl = tls
    # Publisher and worker must name the same steps, or the worker never reads the lists of the missing ones.
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        **broker_transport_options(settings),
        "priority_steps": sorted(PRIORITY_STEPS.values()),
    }
    return app
