"""Synchronous calls over real HTTP against the session's worker: an Idempotency-Key makes a retried call wait for
the job the first one made, on every route that waits; a caller that leaves cancels its job (unless it sent a key);
and one keep-alive connection carries streams, refused requests and plain ones in turn without a 500."""

from __future__ import annotations

import json
import uuid

import openai
import pytest
import requests

from tests.conftest import HttpServer, WorkerProcess, start_api_server, stop_process
from tests.polling import poll_until

KEYS = {"idem": "sync-idempotent-key", "leave": "sync-leaving-key", "keep": "sync-keeping-key", "alive": "sync-alive"}
CHAT = [{"role": "user", "content": "Kể chuyện"}]
ABANDONED_CALLS = 12
LEFT_AFTER_S = 0.5
# Liveness bounds, not timing targets: the machine is shared and slow at times.
CANCELED_WITHIN_S = 60
ANSWER_WITHIN_S = 120
KEEP_ALIVE_ROUNDS = 30


@pytest.fixture(scope="module")
def server(worker: WorkerProcess, tmp_path_factory) -> HttpServer:
    out = tmp_path_factory.mktemp("sync-callers") / "gunicorn.out"
    started = start_api_server(dict(worker.env, API_KEYS=",".join(KEYS.values())), out)
    started.log_path = out  # type: ignore[attr-defined]
    yield started
    stop_process(started.process)


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def _client(server: HttpServer, name: str, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=KEYS[name], max_retries=0, **options)


def _jobs(server: HttpServer, name: str) -> list[dict]:
    answer = requests.get(f"{server.base_url}/jobs?limit=100", headers=_auth(name), timeout=10)
    return answer.json()["data"]


def test_a_generate_call_retried_with_its_idempotency_key_gets_the_same_job(server):
    url = f"{server.base_url}/v1/generate"
    key = {"Idempotency-Key": uuid.uuid4().hex, **_auth("idem")}
    body = {"prompt": "Hà Nội", "max_tokens": 4}
    first = requests.post(url, json=body, headers=key, timeout=ANSWER_WITHIN_S)
    again = requests.post(url, json=body, headers=key, timeout=ANSWER_WITHIN_S)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["text"] == first.json()["text"]
    other = requests.post(url, json={**body, "max_tokens": 5}, headers=key, timeout=ANSWER_WITHIN_S)
    assert other.status_code == 422 and other.json()["error"]["field"] == "Idempotency-Key"
    assert [job["id"] for job in _jobs(server, "idem")].count(first.json()["id"]) == 1


def test_an_openai_call_retried_with_its_idempotency_key_gets_the_same_job(server):
    client = _client(server, "idem", timeout=ANSWER_WITHIN_S)
    before = len(_jobs(server, "idem"))
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.chat.completions.create(model="x", messages=CHAT, max_tokens=4, extra_headers=headers)
    again = client.chat.completions.create(model="x", messages=CHAT, max_tokens=4, extra_headers=headers)
    assert again.id == first.id and again.choices[0].message.content == first.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="x", messages=CHAT, max_tokens=5, extra_headers=headers)
    assert caught.value.body["param"] == "Idempotency-Key"
    text = client.completions.create(model="x", prompt="Phở", max_tokens=3, extra_headers={"Idempotency-Key": "t"})
    assert (
        client.completions.create(model="x", prompt="Phở", max_tokens=3, extra_headers={"Idempotency-Key": "t"}).id
        == text.id
    )
    assert len(_jobs(server, "idem")) == before + 2


def test_callers_that_leave_synchronous_calls_cancel_their_jobs_and_the_next_call_is_served(server):
    impatient = _client(server, "leave", timeout=LEFT_AFTER_S)
    for n in range(ABANDONED_CALLS):
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(
                model="x",
                messages=[{"role": "user", "content": f"Kể một câu chuyện dài số {n}"}],
                max_tokens=1500,
                extra_body={"ignore_eos": True},
            )
    for n in range(2):
        with pytest.raises(requests.Timeout):
            requests.post(
                f"{server.base_url}/v1/generate",
                json={"prompt": f"Một câu chuyện dài {n}", "max_tokens": 1500, "ignore_eos": True},
                headers=_auth("leave"),
                timeout=LEFT_AFTER_S,
            )
    jobs = poll_until(lambda: _jobs(server, "leave"), lambda found: len(found) == ABANDONED_CALLS + 2, 30, "jobs")
    for job in jobs:
        poll_until(
            lambda job_id=job["id"]: requests.get(f"{server.base_url}/jobs/{job_id}", headers=_auth("leave")).json(),
            lambda found: found["status"] == "canceled",
            CANCELED_WITHIN_S,
            f"job {job['id']} canceled",
        )
    answer = _client(server, "leave", timeout=ANSWER_WITHIN_S).chat.completions.create(
        model="x", messages=CHAT, max_tokens=4
    )
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_a_caller_with_an_idempotency_key_that_leaves_keeps_its_job_and_gets_it_on_retry(server):
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"model": "x", "messages": CHAT, "max_tokens": 600, "extra_body": {"ignore_eos": True}}
    with pytest.raises(openai.APITimeoutError):
        _client(server, "keep", timeout=LEFT_AFTER_S).chat.completions.create(**body, extra_headers=headers)
    answer = _client(server, "keep", timeout=ANSWER_WITHIN_S).chat.completions.create(**body, extra_headers=headers)
    assert answer.usage.completion_tokens == 600 and answer.choices[0].finish_reason == "length"
    assert [job["status"] for job in _jobs(server, "keep")] == ["succeeded"]


def test_one_keep_alive_connection_carries_streams_refusals_and_plain_calls_without_a_500(server):
    session = requests.Session()
    session.headers.update(_auth("alive"))
    chat_url = f"{server.base_url}/v1/chat/completions"
    statuses = []
    for n in range(KEEP_ALIVE_ROUNDS):
        stream = session.post(
            chat_url,
            json={"messages": CHAT, "max_tokens": 2, "stream": True, "seed": n},
            stream=True,
            timeout=ANSWER_WITHIN_S,
        )
        lines = [line for line in stream.iter_lines(decode_unicode=True) if line]
        assert lines[-1] == "data: [DONE]"
        refused = session.post(chat_url, data=b"{", headers={"Content-Type": "application/json"}, timeout=30)
        plain = session.get(f"{server.base_url}/v1/models", timeout=30)
        for answer in (refused, plain):
            assert answer.headers["Content-Type"].startswith("application/json"), answer.text
            json.loads(answer.text)
        statuses.append((stream.status_code, refused.status_code, plain.status_code))
    assert set(statuses) == {(200, 400, 200)}
    log = server.log_path.read_text()  # type: ignore[attr-defined]
    assert "Traceback" not in log and "ConcurrentObjectUseError" not in log
