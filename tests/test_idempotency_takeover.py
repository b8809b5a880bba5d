"""An Idempotency-Key whose first request died after claiming it, before storing anything, is not stuck."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
import requests

import core.jobs.idempotency
from api.app import create_app
from launcher.redis_server import free_port
from tests.conftest import ROOT, queue_length, service_env, unconsumed_queue_name


@pytest.fixture
def owner_key() -> str:
    """An API key of this test's own, so the owner's listing holds only what this test made."""
    return f"key-{uuid.uuid4().hex}"


def submit_to_an_api_that_dies_after_claiming(env: dict[str, str], body: dict, headers: dict) -> None:
    """POST through gunicorn serving tests.fault_wsgi_claim:app; its worker exits mid-request."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
               "tests.fault_wsgi_claim:app"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "the fault API did not start"
                time.sleep(0.1)
        with pytest.raises(requests.ConnectionError):  # the worker died: no answer at all
            requests.post(f"http://127.0.0.1:{port}/jobs", json=body, headers=headers, timeout=10)
    finally:
        process.terminate()
        process.wait(30)


def test_a_retry_after_the_stale_period_makes_the_job_exactly_once(
    make_settings, redis_server, tmp_path, request, owner_key
):
    queue = unconsumed_queue_name(request)
    body = {"prompt": "chỉ một lần", "max_tokens": 4}
    headers = {"Idempotency-Key": "dies-after-claim", "Authorization": f"Bearer {owner_key}"}
    env = service_env(redis_server.url, tmp_path / "no-model", tmp_path / "logs", API_KEYS=owner_key, GPU_QUEUE=queue)
    submit_to_an_api_that_dies_after_claiming(env, body, headers)

    client = create_app(make_settings(gpu_queue=queue, api_keys=[owner_key], idempotency_stale_seconds=1.5))
    client = client.test_client()
    retried = client.post("/jobs", json=body, headers=headers)
    assert retried.status_code == 202, retried.get_json()
    again = client.post("/jobs", json=body, headers=headers)
    assert again.status_code == 202 and again.get_json()["id"] == retried.get_json()["id"]
    listing = client.get("/jobs", headers=headers).get_json()["data"]
    assert [job["id"] for job in listing] == [retried.get_json()["id"]]
    assert queue_length(redis_server.url, queue) == 1


def test_a_fresh_claim_is_not_taken_over(make_settings, redis_server, tmp_path, request, owner_key, monkeypatch):
    """Within the stale period the claim stands: the retry is told to come back (503), and nothing is made."""
    monkeypatch.setattr(core.jobs.idempotency, "EARLIER_WAIT_S", 0.5)
    queue = unconsumed_queue_name(request)
    body = {"prompt": "chưa", "max_tokens": 4}
    headers = {"Idempotency-Key": "still-fresh", "Authorization": f"Bearer {owner_key}"}
    env = service_env(redis_server.url, tmp_path / "no-model", tmp_path / "logs", API_KEYS=owner_key, GPU_QUEUE=queue)
    submit_to_an_api_that_dies_after_claiming(env, body, headers)

    client = create_app(make_settings(gpu_queue=queue, api_keys=[owner_key], idempotency_stale_seconds=600))
    retried = client.test_client().post("/jobs", json=body, headers=headers)
    assert retried.status_code == 503 and int(retried.headers["Retry-After"]) >= 1
    assert queue_length(redis_server.url, queue) == 0
