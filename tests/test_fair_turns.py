"""Fair turns end to end: one key's long backlog does not hold back another key's jobs (real API, real worker)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from core.jobs.model import JobStatus
from core.jobs.store import JobStore, connect
from core.redis.keys import BATCH_JOBS_KEY
from tests.conftest import start_api_server, stop_process
from tests.polling import poll_until

KEY_A, KEY_B = "fair-key-backlog", "fair-key-few"
# The session worker's MAX_BATCH_SIZE is the default, 8: it holds up to 16 jobs (8 running, 8 waiting for a place)
# when the second key arrives. Its 10 jobs then alternate with the backlog's, so all start within about
# 8 + 2 x 10 places; without turns they would wait behind the whole backlog.
PLACES_BOUND = 8 + 2 * 10 + 8


@pytest.fixture(scope="module")
def keyed_api(worker, tmp_path_factory):
    server = start_api_server(
        dict(worker.env, API_KEYS=f"{KEY_A},{KEY_B}"), tmp_path_factory.mktemp("fair-api") / "gunicorn.out"
    )
    yield server
    stop_process(server.process)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def started(job) -> datetime:
    return datetime.fromisoformat(job.started_at)


def places_until_all_started(store: JobStore, backlog_ids: list[str], few_ids: list[str], since: datetime) -> int:
    """How many jobs started from `since` until the last of `few_ids` did (it included)."""
    few = [store.get(job_id) for job_id in few_ids]
    last = max(started(job) for job in few)
    backlog = [job for job in map(store.get, backlog_ids) if job is not None and job.started_at is not None]
    return len(few) + sum(1 for job in backlog if since <= started(job) <= last)


def places_once_all_succeeded(store: JobStore, backlog_ids: list[str], few_ids: list[str], since: datetime) -> int:
    """Wait for the second key's jobs to succeed, then count the places they took to start (see below)."""
    poll_until(
        lambda: [store.get(job_id).status for job_id in few_ids],
        lambda statuses: all(status == JobStatus.SUCCEEDED for status in statuses),
        120,
        "the second key's 10 jobs to succeed",
    )
    return places_until_all_started(store, backlog_ids, few_ids, since)


def batch_job_ids(store: JobStore, batch_id: str) -> list[str]:
    return store.redis.lrange(BATCH_JOBS_KEY.format(batch_id=batch_id), 0, -1)


def batch_body(count: int) -> str:
    return "\n".join(
        json.dumps({"custom_id": str(n), "body": {"prompt": f"line {n}", "max_tokens": 2}}) for n in range(count)
    )


def submit_batch(base_url: str, key: str, count: int) -> str:
    response = requests.post(
        f"{base_url}/batches",
        data=batch_body(count),
        headers={**auth(key), "Content-Type": "application/jsonl"},
        timeout=120,
    )
    assert response.status_code == 202, response.text[:300]
    return response.json()["id"]


def wait_until_running(store: JobStore, job_ids: list[str], count: int) -> None:
    poll_until(
        lambda: sum(1 for job_id in job_ids[:64] if store.get(job_id).status != JobStatus.QUEUED),
        lambda begun: begun >= count,
        60,
        "the backlog's first jobs to start",
    )


def test_ten_lines_of_a_second_key_start_within_a_few_places_of_a_2000_line_batch(keyed_api, redis_server):
    store = JobStore(connect(redis_server.url), job_ttl_s=3600)
    backlog_batch = submit_batch(keyed_api.base_url, KEY_A, 2000)
    backlog = batch_job_ids(store, backlog_batch)
    wait_until_running(store, backlog, 8)
    since = datetime.now().astimezone()
    few_batch = submit_batch(keyed_api.base_url, KEY_B, 10)
    few = batch_job_ids(store, few_batch)
    places = places_once_all_succeeded(store, backlog, few, since)
    print(f"the second key's 10 lines all started within {places} places of its submission")
    assert places <= PLACES_BOUND
    requests.post(f"{keyed_api.base_url}/batches/{backlog_batch}/cancel", headers=auth(KEY_A), timeout=60)


def test_ten_jobs_of_a_second_key_start_within_a_few_places_of_another_keys_100_queued(keyed_api, redis_server):
    store = JobStore(connect(redis_server.url), job_ttl_s=3600)

    def submit(key: str, n: int) -> str:
        body = {"prompt": f"job {n}", "max_tokens": 2}
        response = requests.post(f"{keyed_api.base_url}/jobs", json=body, headers=auth(key), timeout=60)
        assert response.status_code == 202, response.text[:300]
        return response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        backlog = list(pool.map(lambda n: submit(KEY_A, n), range(100)))
    wait_until_running(store, backlog, 8)
    since = datetime.now().astimezone()
    few = [submit(KEY_B, n) for n in range(10)]
    places = places_once_all_succeeded(store, backlog, few, since)
    print(f"the second key's 10 jobs all started within {places} places of their submission")
    assert places <= PLACES_BOUND
