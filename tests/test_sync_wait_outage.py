"""A synchronous call whose Redis goes away while it waits: it rides out a short outage, and past that answers 503
naming the job it stored, so a retry finds the job instead of running it twice. Real gunicorn, a Redis of the
test's own (stopped and started again), no worker: the test ends the job itself through the store."""

from __future__ import annotations

import threading
from pathlib import Path

import openai
import pytest
import requests

from core.jobs.model import JobStatus
from core.jobs.store import JobStore, connect
from core.redis.keys import QUEUED_INDEX_KEY
from launcher.redis_server import RedisServer
from tests.conftest import HttpServer, queue_length, service_env, start_api_server, stop_process
from tests.polling import poll_until

KEY = "outage-key"
QUEUE = "no-worker-reads-this"
OUTAGE_RIDDEN_S = 4
# Liveness bounds only.
STORED_WITHIN_S = 20
ANSWER_WITHIN_S = 60


@pytest.fixture
def api(own_redis: RedisServer, tmp_path: Path) -> HttpServer:
    env = service_env(
        own_redis.url,
        tmp_path / "no-model",
        tmp_path / "logs",
        API_KEYS=KEY,
        GPU_QUEUE=QUEUE,
        SYNC_WAIT_OUTAGE_SECONDS=str(OUTAGE_RIDDEN_S),
    )
    server = start_api_server(env, tmp_path / "gunicorn.out")
    yield server
    stop_process(server.process)


def _call_in_background(call) -> dict:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["answer"] = call()
        except Exception as error:  # the test asserts on it
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _generate_in_background(base_url: str, headers: dict[str, str]) -> dict:
    """A `POST /v1/generate` that waits for its job, sent from a thread of its own."""
    return _call_in_background(
        lambda: requests.post(
            f"{base_url}/v1/generate", json={"prompt": "Chờ", "max_tokens": 4}, headers=headers, timeout=ANSWER_WITHIN_S
        )
    )


def _waiting_job_id(redis_url: str) -> str:
    """The id of the call's job once it is stored and published: the call is then (about to be) waiting."""
    poll_until(lambda: queue_length(redis_url, QUEUE), bool, STORED_WITHIN_S, "the job published")
    return JobStore(connect(redis_url), job_ttl_s=3600).redis.zrange(QUEUED_INDEX_KEY, 0, -1)[0]


def test_a_wait_past_the_outage_it_rides_out_answers_503_naming_the_stored_job(api, own_redis):
    headers = {"Authorization": f"Bearer {KEY}"}
    pending = _generate_in_background(api.base_url, headers)
    job_id = _waiting_job_id(own_redis.url)
    own_redis.stop()
    pending["thread"].join(ANSWER_WITHIN_S)
    own_redis.start()
    answer = pending["answer"]
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    assert answer.json()["error"]["job_id"] == job_id and answer.headers["Location"] == f"/jobs/{job_id}"
    # The job was kept through the outage: the caller reads it where the answer said.
    again = requests.get(f"{api.base_url}/jobs/{job_id}", headers=headers, timeout=5)
    assert again.status_code == 200 and again.json()["status"] == "queued"


def test_an_openai_wait_past_the_outage_names_the_job_too(api, own_redis):
    client = openai.OpenAI(base_url=f"{api.base_url}/v1", api_key=KEY, max_retries=0, timeout=ANSWER_WITHIN_S)
    pending = _call_in_background(
        lambda: client.chat.completions.create(model="x", messages=[{"role": "user", "content": "Chờ"}], max_tokens=4)
    )
    job_id = _waiting_job_id(own_redis.url)
    own_redis.stop()
    pending["thread"].join(ANSWER_WITHIN_S)
    own_redis.start()
    error = pending["error"]
    assert isinstance(error, openai.InternalServerError) and error.status_code == 503
    assert job_id in error.body["message"] and error.response.headers["Location"] == f"/jobs/{job_id}"
    assert set(error.body) == {"message", "type", "param", "code"}


def test_a_short_outage_is_ridden_out_and_the_call_answers_with_its_job(api, own_redis):
    headers = {"Authorization": f"Bearer {KEY}"}
    pending = _generate_in_background(api.base_url, headers)
    job_id = _waiting_job_id(own_redis.url)
    own_redis.stop()
    own_redis.start()  # back well within OUTAGE_RIDDEN_S
    store = JobStore(connect(own_redis.url), job_ttl_s=3600)
    store.transition(job_id, JobStatus.RUNNING)
    store.transition(job_id, JobStatus.SUCCEEDED)
    pending["thread"].join(ANSWER_WITHIN_S)
    answer = pending["answer"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == job_id
