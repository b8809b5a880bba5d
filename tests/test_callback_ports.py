"""Callback URLs: web ports only, no invisible characters, and refusals that never name a resolved address."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from core.jobs.store import JobStore, connect
from core.webhooks.callback_urls import CallbackUrlRefused, check_callback_url
from core.webhooks.deliveries import Delivery
from core.webhooks.queue import WebhookQueue
from ops.webhook_delivery import WebhookSender
from tests.conftest import WEBHOOK_SECRET, queue_length, unconsumed_queue_name

IP_PATTERN = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b|\b[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}\b", re.IGNORECASE)


@pytest.fixture
def client_and_queue(make_settings, request):
    queue = unconsumed_queue_name(request)
    return create_app(make_settings(gpu_queue=queue, webhook_secret=WEBHOOK_SECRET)).test_client(), queue


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:22/hook",
        "https://example.com:8443/hook",
        "http://example.com/ho\nok",
        "http://example.com/hook\r\nX-Injected: 1",
        "http://example.com/a b",
        "http://example.com/\x00",
        "http://example.com/\u200bhidden",
        "http://exa\tmple.com/hook",
    ],
)
def test_other_ports_and_invisible_characters_are_a_422_at_submit(client_and_queue, redis_server, url):
    client, queue = client_and_queue
    response = client.post("/jobs", json={"prompt": "x", "webhook": url})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == "webhook"
    assert queue_length(redis_server.url, queue) == 0


def test_web_ports_and_allowed_ports_pass_the_port_rule():
    for url in ("http://8.8.8.8/hook", "https://8.8.8.8:443/hook", "http://8.8.8.8:80/hook"):
        assert check_callback_url(url, allow_private=False).address == "8.8.8.8"
    assert check_callback_url("http://8.8.8.8:8080/", allow_private=False, allowed_ports=[8080]).port == 8080
    with pytest.raises(CallbackUrlRefused, match="only ports 80, 443"):
        check_callback_url("http://8.8.8.8:8080/", allow_private=False)


def test_allowing_private_receivers_allows_their_ports_but_not_public_ones():
    assert check_callback_url("http://127.0.0.1:8765/hook", allow_private=True).port == 8765
    with pytest.raises(CallbackUrlRefused, match="only ports"):
        check_callback_url("http://8.8.8.8:8765/hook", allow_private=True)


def test_a_refusal_names_no_resolved_address(client_and_queue):
    client, _ = client_and_queue
    response = client.post("/jobs", json={"prompt": "x", "webhook": "http://localhost/hook"})
    message = response.get_json()["error"]["message"]
    assert response.status_code == 422 and "private address" in message
    assert not IP_PATTERN.search(message), message
    assert "127.0.0.1" not in message and "::1" not in message


def test_a_refusal_at_send_time_is_recorded_without_the_address(make_settings, redis_server, store):
    """A job whose callback now resolves inside: its delivery record says why, not where."""
    settings = make_settings(webhook_secret=WEBHOOK_SECRET, webhook_allow_private=False)
    client = connect(redis_server.url)
    queue = WebhookQueue(client, ttl_s=3600)
    job = (
        create_app(make_settings(webhook_secret=WEBHOOK_SECRET, webhook_allow_private=True))
        .test_client()
        .post("/jobs", json={"prompt": "x", "webhook": "http://localhost/hook", "webhook_events": ["started"]})
    )
    job_id = job.get_json()["id"]
    delivery = Delivery(id=f"msg_{job_id}", subject_id=job_id, event="started", url="http://localhost/hook", body="{}")
    queue.retry_later(delivery, 0)
    WebhookSender(settings, JobStore(client, job_ttl_s=3600), queue).attempt(delivery.id)
    [record] = store.get(job_id).webhook.deliveries
    assert record.error and "private address" in record.error
    assert not IP_PATTERN.search(record.error), record.error
