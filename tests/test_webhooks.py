"""Webhooks end to end: real API, worker and webhook worker; a real receiver on loopback verifies them."""

from __future__ import annotations

import collections
import json
import time

import pytest
import redis
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core.jobs.model import parse_iso
from core.redis.keys import WEBHOOK_DELIVERY_KEY
from core.webhooks.deliveries import sign
from launcher.redis_server import free_port
from tests.conftest import TEST_RETRY_SCHEDULE, WEBHOOK_SECRET
from tests.polling import poll_until, wait_for_job, wait_for_terminal
from tests.receivers import Receiver
from tests.test_job_spine import submit

# POST /batches takes only a declared JSON or JSONL body.
JSONL = {"Content-Type": "application/jsonl"}

QUICK = {"prompt": "Webhook, xin chào", "max_tokens": 4}


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(statuses: list[int] | None = None, delay_s: float = 0.0, start: bool = True) -> Receiver:
        server = Receiver(free_port(), statuses, delay_s)
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop()


def delivered(event: str = "completed"):
    return lambda job: job["webhook"]["state"].get(event) not in (None, "pending")


def test_delivery_verifies_with_the_standard_webhooks_library(api_server, webhook_worker, receiver):
    hook = receiver()
    job = submit(api_server.base_url, QUICK | {"webhook": hook.url})
    [request] = hook.wait_for(1)
    payload = Webhook(WEBHOOK_SECRET).verify(request.body, request.headers)
    assert payload["type"] == "job.completed" and payload["data"]["id"] == job["id"]
    assert payload["data"]["status"] == "succeeded" and payload["data"]["output"]["text"]
    finished = wait_for_job(api_server.base_url, job["id"], delivered())
    assert finished["webhook"]["state"] == {"completed": "delivered"}
    [attempt] = finished["webhook"]["deliveries"]
    assert attempt["status_code"] == 200 and attempt["webhook_id"] == request.headers["webhook-id"]

    tampered = request.body.replace(b'"succeeded"', b'"failed"')
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(tampered, request.headers)
    # A correctly signed delivery whose timestamp is 10 minutes old is a replay: refused.
    old = int(time.time()) - 600
    key = Webhook(WEBHOOK_SECRET)._whsecret
    replayed = dict(request.headers)
    replayed["webhook-timestamp"] = str(old)
    replayed["webhook-signature"] = sign(key, request.headers["webhook-id"], old, request.body.decode())
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(request.body, replayed)


def test_failures_are_retried_with_the_same_webhook_id_and_recorded(api_server, webhook_worker, receiver):
    hook = receiver(statuses=[500, 500, 200])
    job = submit(api_server.base_url, QUICK | {"webhook": hook.url})
    requests_seen = hook.wait_for(3)
    finished = wait_for_job(api_server.base_url, job["id"], delivered())
    time.sleep(1.0)  # nothing more may come
    assert len(hook.requests) == 3
    assert len({r.headers["webhook-id"] for r in requests_seen}) == 1
    assert [d["status_code"] for d in finished["webhook"]["deliveries"]] == [500, 500, 200]
    assert [d["attempt"] for d in finished["webhook"]["deliveries"]] == [1, 2, 3]
    assert finished["webhook"]["state"]["completed"] == "delivered"


def test_410_stops_after_one_attempt(api_server, webhook_worker, receiver):
    hook = receiver(statuses=[410])
    job = submit(api_server.base_url, QUICK | {"webhook": hook.url})
    finished = wait_for_job(api_server.base_url, job["id"], delivered())
    time.sleep(1.0)
    assert len(hook.requests) == 1
    assert finished["webhook"]["state"]["completed"] == "gone"


def test_redirect_is_a_failure_and_the_last_failure_marks_it_failed(api_server, webhook_worker, receiver):
    hook = receiver(statuses=[302] * 20)
    job = submit(api_server.base_url, QUICK | {"webhook": hook.url})
    finished = wait_for_job(api_server.base_url, job["id"], delivered(), timeout_s=30)
    attempts = len(finished["webhook"]["deliveries"])
    assert finished["webhook"]["state"]["completed"] == "failed"
    assert attempts == 1 + len([s for s in ["0.25", "0.25", "0.25", "0.25", "0.25", "0.25", "0.25", "0.25"]])
    assert len(hook.requests) == attempts and all(d["status_code"] == 302 for d in finished["webhook"]["deliveries"])
    # The result stays available by polling.
    assert finished["status"] == "succeeded" and finished["output"]["text"]


def test_receiver_down_then_up_gets_it_once_up(api_server, webhook_worker, receiver):
    hook = receiver(start=False)
    job = submit(api_server.base_url, QUICK | {"webhook": hook.url})
    wait_for_job(api_server.base_url, job["id"], lambda j: len(j["webhook"]["deliveries"]) >= 2)
    hook.start()
    finished = wait_for_job(api_server.base_url, job["id"], delivered())
    assert finished["webhook"]["state"]["completed"] == "delivered"
    failures = [d for d in finished["webhook"]["deliveries"] if d["status_code"] is None]
    assert failures and all("Connection" in d["error"] or "refused" in d["error"].lower() for d in failures)
    assert len(hook.requests) == 1


def test_started_then_completed_arrive_in_order(api_server, webhook_worker, receiver):
    hook = receiver()
    job = submit(api_server.base_url, QUICK | {"webhook": hook.url, "webhook_events": ["completed", "started"]})
    first, second = hook.wait_for(2)
    types = [json.loads(r.body)["type"] for r in (first, second)]
    assert types == ["job.started", "job.completed"]
    assert json.loads(first.body)["data"]["status"] == "running"
    assert first.headers["webhook-id"] != second.headers["webhook-id"]
    finished = wait_for_job(api_server.base_url, job["id"], lambda j: len(j["webhook"]["state"]) == 2 and all(
        v == "delivered" for v in j["webhook"]["state"].values()))  # fmt: skip
    assert finished["webhook"]["events"] == ["started", "completed"]


def test_completed_waits_for_a_failing_started_without_being_rewritten(
    api_server, webhook_worker, receiver, redis_server
):
    """While `started` fails attempt after attempt, `completed` waits parked: its record is written once, at the
    job's end; it goes out as soon as `started` has failed for good."""
    started_attempts = 1 + len(TEST_RETRY_SCHEDULE.split(","))
    hook = receiver(statuses=[500] * started_attempts)  # then 200, for `completed`
    client = redis.Redis.from_url(redis_server.url)
    database = client.connection_pool.connection_kwargs.get("db", 0)
    previous = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    # Keyspace events of string commands: Redis itself reports every SET of a delivery record.
    client.config_set("notify-keyspace-events", "K$")
    events = client.pubsub()
    events.psubscribe(f"__keyspace@{database}__:{WEBHOOK_DELIVERY_KEY.format(delivery_id='*')}")
    try:
        job = submit(api_server.base_url, QUICK | {"webhook": hook.url, "webhook_events": ["started", "completed"]})
        seen = hook.wait_for(started_attempts + 1)
        finished = wait_for_job(api_server.base_url, job["id"], delivered("completed"))
    finally:
        client.config_set("notify-keyspace-events", previous)
    writes: collections.Counter[str] = collections.Counter()
    while (event := events.get_message(timeout=0.5)) is not None:
        if event["type"] == "pmessage" and event["data"] == b"set":
            writes[event["channel"].decode().rsplit(":", 1)[1]] += 1
    events.close()

    types = [json.loads(request.body)["type"] for request in seen]
    assert types == ["job.started"] * started_attempts + ["job.completed"]
    assert finished["webhook"]["state"] == {"started": "failed", "completed": "delivered"}
    # `completed` was raised while `started` was still being retried, and went out only after its last attempt.
    assert parse_iso(finished["completed_at"]).timestamp() < seen[started_attempts - 1].at
    started_id, completed_id = seen[0].headers["webhook-id"], seen[-1].headers["webhook-id"]
    assert writes[started_id] == started_attempts  # staged, then rewritten with each retry: the count is real
    assert writes[completed_id] == 1


def test_slow_receiver_never_delays_the_next_job(api_server, webhook_worker, receiver):
    slow = receiver(delay_s=10)
    first = wait_for_terminal(api_server.base_url, submit(api_server.base_url, QUICK | {"webhook": slow.url})["id"])
    slow.wait_for(1)  # the receiver is now holding the webhook worker's request
    second = wait_for_terminal(api_server.base_url, submit(api_server.base_url, QUICK)["id"])
    from core.jobs.model import parse_iso

    assert (parse_iso(second["started_at"]) - parse_iso(first["completed_at"])).total_seconds() < 5
    assert time.time() - slow.requests[0].at < 10  # the slow answer has not even come yet


def test_job_without_webhook_has_none(api_server):
    assert submit(api_server.base_url, QUICK)["webhook"] is None


def test_batch_webhook_receives_a_signed_batch_completed(api_server, webhook_worker, receiver):
    hook = receiver()
    lines = "\n".join(json.dumps({"custom_id": f"w{i}", "body": QUICK}) for i in range(5))
    response = requests.post(
        f"{api_server.base_url}/batches", params={"webhook": hook.url}, data=lines, headers=JSONL, timeout=30
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    # Batch lines come after every other job on the session's shared worker: a generous bound, not a timing target.
    [request] = hook.wait_for(1, timeout_s=90)
    event = Webhook(WEBHOOK_SECRET).verify(request.body, request.headers)
    assert event["type"] == "batch.completed" and event["data"]["id"] == batch_id
    assert event["data"]["counts"]["succeeded"] == 5 and event["data"]["completed_at"]
    batch = poll_until(
        lambda: requests.get(f"{api_server.base_url}/batches/{batch_id}", timeout=5).json(),
        lambda batch: batch["webhook"]["state"].get("completed") == "delivered",
        10,
        "the batch's delivery to be recorded",
    )
    assert batch["webhook"]["state"]["completed"] == "delivered"
    assert batch["webhook"]["deliveries"][0]["status_code"] == 200
