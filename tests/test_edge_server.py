"""The API edge under real use, over real HTTP to gunicorn's gevent workers on the tests' Redis: many waiting
synchronous clients, and the per-key limits (waits in flight, request rate, queued jobs, high priority)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from core.jobs.store import JobStore, connect
from core.limits.wait_slots import WaitSlots
from core.owners.ids import owner_id_for_key
from launcher.redis_server import RedisServer
from tests.conftest import HttpServer, service_env, start_api_server, stop_process, unconsumed_queue_name
from tests.polling import poll_until

# POST /batches takes only a declared JSON or JSONL body.
JSONL = {"Content-Type": "application/jsonl"}

WAITING_CLIENTS = 200
# A liveness bound, not a timing target: the machine is shared and slow at times.
ANSWER_WITHIN_S = 10
LONG_WAIT_S = 120

WAITER_KEY = "edge-waiter-key"
KEYS = {
    "waits": "edge-waits-key",
    "waits_other": "edge-waits-other-key",
    "rate": "edge-rate-key",
    "rate_other": "edge-rate-other-key",
    "queued": "edge-queued-key",
    "batch": "edge-batch-key",
    "plain": "edge-plain-key",
    "boss": "edge-boss-key",
}
SMALL_LIMITS = {"MAX_WAITS_PER_KEY": "3", "RATE_LIMIT": "12/minute", "MAX_QUEUED_PER_KEY": "3"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def edge_server(request, redis_server: RedisServer, demo_model_dir: Path, tmp: Path, **extra: str) -> HttpServer:
    """The API on a queue no worker reads (its jobs stay queued, so its synchronous calls really wait)."""
    env = service_env(
        redis_server.url,
        demo_model_dir,
        tmp / "logs",
        GPU_QUEUE=unconsumed_queue_name(request),
        SYNC_WAIT_SECONDS=str(LONG_WAIT_S),
        **extra,
    )
    return start_api_server(env, tmp / "gunicorn.out")


@pytest.fixture(scope="module")
def limited_api(request, redis_server, demo_model_dir, tmp_path_factory) -> Iterator[HttpServer]:
    """The API with small per-key limits, several keys, and one key allowed `priority: high`."""
    server = edge_server(
        request,
        redis_server,
        demo_model_dir,
        tmp_path_factory.mktemp("limited-api"),
        API_KEYS=",".join(KEYS.values()),
        HIGH_PRIORITY_KEYS=KEYS["boss"],
        **SMALL_LIMITS,
    )
    yield server
    stop_process(server.process)


def assert_refused(response: requests.Response, status: int, error_type: str) -> dict:
    """The API's JSON error shape with this status and type; a 429 also says when to come back."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == error_type and error["message"]
    if status == 429:
        assert int(response.headers["Retry-After"]) >= 1
    return error


def queued_job_ids(base_url: str, key: str) -> list[str]:
    """Every queued job of this key, through the API's own listing."""
    ids, cursor = [], None
    while True:
        params = {"status": "queued", "limit": 100} | ({"cursor": cursor} if cursor else {})
        page = requests.get(f"{base_url}/jobs", params=params, headers=auth(key), timeout=ANSWER_WITHIN_S).json()
        ids += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def cancel_all_queued(base_url: str, key: str) -> int:
    job_ids = queued_job_ids(base_url, key)
    for job_id in job_ids:
        response = requests.post(f"{base_url}/jobs/{job_id}/cancel", headers=auth(key), timeout=ANSWER_WITHIN_S)
        assert response.status_code == 200, response.text
    return len(job_ids)


def start_waits(pool: ThreadPoolExecutor, base_url: str, key: str, count: int) -> list[Future]:
    body = {"prompt": "Một câu chuyện rất dài", "max_tokens": 16}
    return [
        pool.submit(requests.post, f"{base_url}/v1/generate", json=body, headers=auth(key), timeout=LONG_WAIT_S + 30)
        for _ in range(count)
    ]


def test_200_waiting_clients_leave_healthz_and_post_jobs_answering(request, redis_server, demo_model_dir, tmp_path):
    server = edge_server(request, redis_server, demo_model_dir, tmp_path, API_KEYS=WAITER_KEY)
    owner = owner_id_for_key(WAITER_KEY)
    try:
        with ThreadPoolExecutor(max_workers=WAITING_CLIENTS) as pool:
            waits = start_waits(pool, server.base_url, WAITER_KEY, WAITING_CLIENTS)
            slots = WaitSlots(connect(redis_server.url), limit=1, wait_s=LONG_WAIT_S)
            poll_until(lambda: slots.in_flight(owner), lambda n: n == WAITING_CLIENTS, 60, "200 waits in flight")
            assert not any(wait.done() for wait in waits), "a synchronous call answered while its job was queued"
            for _ in range(5):
                started = time.monotonic()
                assert requests.get(f"{server.base_url}/healthz", timeout=ANSWER_WITHIN_S).status_code == 200
                submitted = requests.post(
                    f"{server.base_url}/jobs", json={"prompt": "x"}, headers=auth(WAITER_KEY), timeout=ANSWER_WITHIN_S
                )
                assert submitted.status_code == 202, submitted.text
                assert time.monotonic() - started < 2 * ANSWER_WITHIN_S
            # Canceling their jobs wakes every waiter through the done message: each answers 409 at once.
            assert cancel_all_queued(server.base_url, WAITER_KEY) == WAITING_CLIENTS + 5
            answers = [wait.result(timeout=60) for wait in waits]
        assert [answer.status_code for answer in answers] == [409] * WAITING_CLIENTS
        assert {answer.json()["error"]["type"] for answer in answers} == {"wrong_state"}
        poll_until(lambda: slots.in_flight(owner), lambda n: n == 0, 10, "every wait slot given back")
    finally:
        stop_process(server.process)


def test_waits_past_the_per_key_bound_get_429_and_create_no_job(limited_api, redis_server):
    base_url, key = limited_api.base_url, KEYS["waits"]
    store = JobStore(connect(redis_server.url), job_ttl_s=3600)
    owner = owner_id_for_key(key)
    with ThreadPoolExecutor(max_workers=4) as pool:
        waits = start_waits(pool, base_url, key, 3)
        poll_until(lambda: store.queued_count(owner), lambda n: n == 3, 30, "three waits with their jobs queued")
        refused = requests.post(
            f"{base_url}/v1/generate", json={"prompt": "x"}, headers=auth(key), timeout=ANSWER_WITHIN_S
        )
        error = assert_refused(refused, 429, "too_many_requests")
        assert "waiting" in error["message"]
        assert store.queued_count(owner) == 3 and len(queued_job_ids(base_url, key)) == 3  # no job for the 429
        # Another key's waits are its own.
        other = start_waits(pool, base_url, KEYS["waits_other"], 1)
        other_owner = owner_id_for_key(KEYS["waits_other"])
        poll_until(lambda: store.queued_count(other_owner), lambda n: n == 1, 30, "the other key's wait")
        assert cancel_all_queued(base_url, key) == 3
        assert cancel_all_queued(base_url, KEYS["waits_other"]) == 1
        assert [wait.result(timeout=30).status_code for wait in waits + other] == [409] * 4
    # The slots are back: the key may wait again.
    with ThreadPoolExecutor(max_workers=1) as pool:
        (again,) = start_waits(pool, base_url, key, 1)
        poll_until(lambda: store.queued_count(owner), lambda n: n == 1, 30, "a wait once the slots are free")
        cancel_all_queued(base_url, key)
        assert again.result(timeout=30).status_code == 409


def test_requests_past_the_per_key_rate_get_429_while_probes_and_other_keys_answer(limited_api):
    base_url, key = limited_api.base_url, KEYS["rate"]
    statuses = [
        requests.get(f"{base_url}/jobs", headers=auth(key), timeout=ANSWER_WITHIN_S).status_code for _ in range(12)
    ]
    assert statuses == [200] * 12
    error = assert_refused(
        requests.get(f"{base_url}/jobs", headers=auth(key), timeout=ANSWER_WITHIN_S), 429, "too_many_requests"
    )
    assert "rate" in error["message"]
    assert_refused(
        requests.post(f"{base_url}/jobs", json={"prompt": "x"}, headers=auth(key), timeout=ANSWER_WITHIN_S),
        429,
        "too_many_requests",
    )
    assert requests.get(f"{base_url}/healthz", timeout=ANSWER_WITHIN_S).status_code == 200
    assert requests.get(f"{base_url}/readyz", timeout=ANSWER_WITHIN_S).status_code in (200, 503)
    assert (
        requests.get(f"{base_url}/jobs", headers=auth(KEYS["rate_other"]), timeout=ANSWER_WITHIN_S).status_code == 200
    )


def test_jobs_past_the_per_key_queued_cap_get_429_until_one_leaves_the_queue(limited_api):
    base_url, key = limited_api.base_url, KEYS["queued"]

    def submit() -> requests.Response:
        return requests.post(f"{base_url}/jobs", json={"prompt": "x"}, headers=auth(key), timeout=ANSWER_WITHIN_S)

    accepted = [submit() for _ in range(3)]
    assert [response.status_code for response in accepted] == [202] * 3
    error = assert_refused(submit(), 429, "too_many_requests")
    assert "queued" in error["message"]
    line = json.dumps({"custom_id": "one", "body": {"prompt": "x"}})
    assert_refused(
        requests.post(f"{base_url}/batches", data=line, headers=auth(key) | JSONL, timeout=ANSWER_WITHIN_S),
        429,
        "too_many_requests",
    )
    first = accepted[0].json()["id"]
    canceled = requests.post(f"{base_url}/jobs/{first}/cancel", headers=auth(key), timeout=ANSWER_WITHIN_S)
    assert canceled.status_code == 200
    assert submit().status_code == 202  # a canceled job left the queue, and the count with it
    assert cancel_all_queued(base_url, key) == 3


def test_a_batch_counts_its_lines_against_the_queued_cap(limited_api):
    base_url, key = limited_api.base_url, KEYS["batch"]
    lines = "\n".join(json.dumps({"custom_id": f"line-{i}", "body": {"prompt": "x"}}) for i in range(4))
    assert_refused(
        requests.post(f"{base_url}/batches", data=lines, headers=auth(key) | JSONL, timeout=ANSWER_WITHIN_S),
        429,
        "too_many_requests",
    )
    three = "\n".join(lines.splitlines()[:3])
    batch = requests.post(f"{base_url}/batches", data=three, headers=auth(key) | JSONL, timeout=ANSWER_WITHIN_S)
    assert batch.status_code == 202, batch.text
    refused = requests.post(f"{base_url}/jobs", json={"prompt": "x"}, headers=auth(key), timeout=ANSWER_WITHIN_S)
    assert_refused(refused, 429, "too_many_requests")
    batch_id = batch.json()["id"]
    assert requests.post(f"{base_url}/batches/{batch_id}/cancel", headers=auth(key), timeout=ANSWER_WITHIN_S).ok
    accepted = requests.post(f"{base_url}/jobs", json={"prompt": "x"}, headers=auth(key), timeout=ANSWER_WITHIN_S)
    assert accepted.status_code == 202, accepted.text
    assert cancel_all_queued(base_url, key) == 1


def test_high_priority_is_refused_to_a_key_not_allowed_it_and_accepted_for_one_allowed(limited_api):
    base_url = limited_api.base_url
    high = {"prompt": "x", "priority": "high"}
    refused = requests.post(f"{base_url}/jobs", json=high, headers=auth(KEYS["plain"]), timeout=ANSWER_WITHIN_S)
    error = assert_refused(refused, 403, "forbidden")
    assert error["field"] == "priority"
    assert queued_job_ids(base_url, KEYS["plain"]) == []  # refused before anything was stored
    normal = requests.post(f"{base_url}/jobs", json={"prompt": "x"}, headers=auth(KEYS["plain"]), timeout=10)
    assert normal.status_code == 202
    allowed = requests.post(f"{base_url}/jobs", json=high, headers=auth(KEYS["boss"]), timeout=ANSWER_WITHIN_S)
    assert allowed.status_code == 202, allowed.text
    assert allowed.json()["priority"] == "high"
    assert cancel_all_queued(base_url, KEYS["plain"]) == 1
    assert cancel_all_queued(base_url, KEYS["boss"]) == 1
