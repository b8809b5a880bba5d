"""No webhook is ever aimed inside the network: refused at submit, and again at send time."""

from __future__ import annotations

import ipaddress

import pytest

from api.app import create_app
from core.jobs.store import JobStore, connect
from core.webhooks.callback_urls import check_callback_url, is_public
from core.webhooks.deliveries import Delivery
from core.webhooks.queue import WebhookQueue
from launcher.redis_server import free_port
from ops.webhook_delivery import WebhookSender
from tests.conftest import WEBHOOK_SECRET, queue_length, unconsumed_queue_name
from tests.receivers import Receiver

# {port} is the canary's: any of these that got through would knock on it.
REFUSED_URLS = [
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://[::1]:{port}/hook",
    "http://127.1:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://0x7f.1:{port}/hook",
    "http://0177.0.0.1:{port}/hook",
    "http://0.0.0.0:{port}/hook",
    "http://[::]:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::ffff:7f00:1]:{port}/hook",
    "http://[64:ff9b::7f00:1]:{port}/hook",
    "http://[64:ff9b::a00:1]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://100.100.100.200/hook",
    "http://192.0.0.8/hook",
    "http://198.18.0.1/hook",
    "http://224.0.0.1/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_hello",
    "ftp://127.0.0.1:{port}/",
    "dict://127.0.0.1:{port}/",
    "javascript:alert(1)",
    "http:///no-host",
    "http://user:secret@127.0.0.1:{port}/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://no-such-host.invalid/hook",
    "http://127.0.0.1:99999/hook",
]


@pytest.fixture
def canary():
    server = Receiver(free_port()).start()
    yield server
    server.stop()


def test_every_refused_url_is_a_422_and_the_canary_hears_nothing(make_settings, canary, redis_server, request):
    queue = unconsumed_queue_name(request)
    client = create_app(make_settings(gpu_queue=queue, webhook_secret=WEBHOOK_SECRET)).test_client()
    assert len(REFUSED_URLS) >= 20
    for template in REFUSED_URLS:
        url = template.format(port=canary.port)
        response = client.post("/jobs", json={"prompt": "x", "webhook": url})
        assert response.status_code == 422, (url, response.get_json())
        error = response.get_json()["error"]
        assert error["type"] == "invalid_input" and error["field"] == "webhook", url
    assert queue_length(redis_server.url, queue) == 0
    assert canary.requests == []


def test_loopback_is_accepted_only_when_private_receivers_are_allowed(make_settings, canary, request):
    queue = unconsumed_queue_name(request)
    client = create_app(
        make_settings(gpu_queue=queue, webhook_secret=WEBHOOK_SECRET, webhook_allow_private=True)
    ).test_client()
    response = client.post("/jobs", json={"prompt": "x", "webhook": canary.url, "webhook_events": ["started"]})
    assert response.status_code == 202
    assert response.get_json()["webhook"] == {"url": canary.url, "events": ["started"], "state": {}, "deliveries": []}


def test_webhook_needs_a_configured_secret(make_settings, canary, request):
    client = create_app(
        make_settings(gpu_queue=unconsumed_queue_name(request), webhook_allow_private=True)
    ).test_client()
    response = client.post("/jobs", json={"prompt": "x", "webhook": canary.url})
    assert response.status_code == 422 and "WEBHOOK_SECRET" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("events", [[], ["finished"], "completed"])
def test_bad_event_list_is_refused(make_settings, request, events):
    client = create_app(make_settings(gpu_queue=unconsumed_queue_name(request), webhook_secret=WEBHOOK_SECRET))
    response = client.test_client().post("/jobs", json={"prompt": "x", "webhook_events": events})
    assert response.status_code == 422 and response.get_json()["error"]["field"].startswith("webhook_events")


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2001:4860:4860::8888"],
)
def test_public_addresses_pass(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible form
        "::ffff:10.0.0.1",  # IPv4-mapped
    ],
)
def test_private_ipv4_hidden_in_ipv6_is_refused(address):
    assert not is_public(ipaddress.ip_address(address))


def test_checked_url_pins_the_resolved_address(canary):
    checked = check_callback_url(f"http://localhost:{canary.port}/a/b?c=d", allow_private=True)
    assert checked.address in ("127.0.0.1", "::1") and checked.host == "localhost"
    assert checked.path == "/a/b?c=d" and checked.port == canary.port


def test_address_refused_at_send_time_is_never_contacted(make_settings, redis_server, canary):
    """A delivery whose URL was fine at submit but now points inside: refused when due, canary untouched."""
    settings = make_settings(webhook_secret=WEBHOOK_SECRET, webhook_allow_private=False)
    client = connect(redis_server.url)
    store, queue = JobStore(client, job_ttl_s=3600), WebhookQueue(client, ttl_s=3600)
    delivery = Delivery(id="msg_sendtime", subject_id="gone-job", event="completed", url=canary.url, body="{}")
    queue.retry_later(delivery, 0)
    WebhookSender(settings, store, queue).attempt(delivery.id)
    assert canary.requests == []
    assert queue.get(delivery.id) is None
