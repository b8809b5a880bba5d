"""A batch envelope over HTTP: taken in any key order, an unknown key or malformed JSON refused with a 422 and
nothing queued (the envelope's parsing itself: tests/unit/core/batches/test_envelope.py)."""

from __future__ import annotations

import json

import pytest

from api.app import create_app
from tests.conftest import WEBHOOK_SECRET, queue_length, unconsumed_queue_name
from tests.unit.core.batches.test_envelope import TRICKY_LINES


@pytest.fixture
def quiet_client(make_settings, request):
    queue = unconsumed_queue_name(request)
    settings = make_settings(gpu_queue=queue, webhook_secret=WEBHOOK_SECRET, webhook_allow_private=True)
    return create_app(settings).test_client(), queue


def test_over_http_an_envelope_is_taken_in_any_key_order_and_unknown_keys_are_refused(quiet_client, redis_server):
    client, queue = quiet_client
    good = {"metadata": {"team": "a"}, "requests": TRICKY_LINES[:3], "webhook": "http://127.0.0.1:9/hook"}
    response = client.post("/batches", data=json.dumps(good).encode(), content_type="application/json")
    assert response.status_code == 202, response.get_json()
    batch = response.get_json()
    assert batch["total"] == 3 and batch["metadata"] == {"team": "a"}
    assert batch["webhook"]["url"] == "http://127.0.0.1:9/hook"
    assert queue_length(redis_server.url, queue) == 3
    listed = [listed["id"] for listed in client.get("/batches").get_json()["data"]]
    assert listed[0] == batch["id"]  # the session's other tests' batches share this owner

    unknown = client.post(
        "/batches", data=json.dumps(good | {"defaults": {"max_tokens": 4}}).encode(), content_type="application/json"
    )
    malformed = client.post("/batches", data=json.dumps(good).encode()[:-40], content_type="application/json")
    for refused in (unknown, malformed):
        assert refused.status_code == 422 and refused.get_json()["error"]["type"] == "invalid_input"
    assert unknown.get_json()["error"]["field"] == "defaults"
    assert "the end of the body, line 1" in malformed.get_json()["error"]["message"]
    assert [
        listed["id"] for listed in client.get("/batches").get_json()["data"]
    ] == listed  # the refused stored nothing
    assert queue_length(redis_server.url, queue) == 3
