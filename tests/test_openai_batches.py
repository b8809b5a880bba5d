"""OpenAI batch files and the OpenAI batch workflow: the official `openai` client against the live API over HTTP,
with the session's real worker and the tiny real model (default MAX_BATCH_SIZE)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from tests.conftest import ROOT, HttpServer, WorkerProcess, start_api_server, stop_process
from tests.polling import poll_until
from tests.test_batches import wait_for_batch

# POST /batches takes only a declared JSON or JSONL body.
JSONL = {"Content-Type": "application/jsonl"}

TERMINAL_BATCH = ("completed", "failed", "cancelled", "expired")
KEY_A, KEY_B = "obatch-key-a", "obatch-key-b"


def chat_line(custom_id: str, text: str, max_tokens: int = 4) -> dict:
    body = {"model": "any-name", "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body | {"seed": 7}}


def completion_line(custom_id: str, text: str) -> dict:
    body = {"model": "any-name", "prompt": text, "max_tokens": 4, "ignore_eos": True}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/completions", "body": body}


def jsonl(lines: list[dict]) -> bytes:
    return ("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n").encode()


def client_for(server: HttpServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=60)


def wait_for_openai_batch(client: openai.OpenAI, batch_id: str, timeout_s: float = 180):
    return poll_until(
        lambda: client.batches.retrieve(batch_id),
        lambda batch: batch.status in TERMINAL_BATCH,
        timeout_s,
        f"OpenAI batch {batch_id} to finish",
        interval_s=0.2,
    )


def parse_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def keyed_api(worker: WorkerProcess, tmp_path_factory) -> Iterator[HttpServer]:
    """The API with two API keys, on the session's worker: each key's files and batches are its own."""
    env = dict(worker.env, API_KEYS=f"{KEY_A},{KEY_B}")
    server = start_api_server(env, tmp_path_factory.mktemp("keyed-api") / "gunicorn.out")
    yield server
    stop_process(server.process)


def test_the_official_client_runs_a_batch_end_to_end(api_server):
    client = client_for(api_server)
    tag = uuid.uuid4().hex[:6]
    lines = [chat_line(f"{tag}-{i}", f"Xin chào {i}") for i in range(12)]
    uploaded = client.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines))
    assert client.files.retrieve(uploaded.id).filename == "requests.jsonl"
    assert client.files.content(uploaded.id).read() == jsonl(lines)

    created = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": tag}
    )
    assert created.status == "in_progress" and created.request_counts.total == 12
    assert created.metadata == {"run": tag} and created.input_file_id == uploaded.id
    done = wait_for_openai_batch(client, created.id)

    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (12, 12, 0)
    assert done.error_file_id is None and done.completed_at >= done.created_at
    assert done.usage.output_tokens > 0
    output = parse_lines(client.files.content(done.output_file_id).text)
    assert sorted(line["custom_id"] for line in output) == sorted(line["custom_id"] for line in lines)
    for line in output:
        assert line["error"] is None and line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == done.model != "any-name"
        assert isinstance(body["choices"][0]["message"]["content"], str) and body["usage"]["completion_tokens"] > 0
    # The OpenAI batch is a batch of this service: same id, its jobs listed and readable natively.
    native = requests.get(f"{api_server.base_url}/batches/{created.id}", timeout=10).json()
    assert native["status"] == "completed" and native["metadata"] == {"run": tag}
    job = requests.get(f"{api_server.base_url}/jobs/{output[0]['response']['request_id']}", timeout=10).json()
    assert job["batch_id"] == created.id and job["priority"] == "batch"
    assert created.id in [batch.id for batch in client.batches.list(limit=100)]
    assert done.output_file_id in [file.id for file in client.files.list(purpose="batch_output")]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(created.id)


def test_cancel_and_a_refused_file_as_openai_reports_them(api_server):
    client = client_for(api_server)
    tag = uuid.uuid4().hex[:6]
    many = [chat_line(f"{tag}-{i}", f"long {i}", max_tokens=64) for i in range(150)]
    uploaded = client.files.create(file=("many.jsonl", jsonl(many)), purpose="batch")
    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert client.batches.cancel(created.id).status in ("cancelling", "cancelled")
    done = wait_for_openai_batch(client, created.id)
    assert done.status == "cancelled" and done.cancelled_at is not None and done.cancelling_at is not None
    counts = done.request_counts
    assert counts.total == 150 and counts.completed + counts.failed == 150 and counts.failed > 0
    errors = parse_lines(client.files.content(done.error_file_id).text)
    assert len(errors) == counts.failed and {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    answered = parse_lines(client.files.content(done.output_file_id).text) if done.output_file_id else []
    assert len(answered) == counts.completed
    assert sorted(line["custom_id"] for line in errors + answered) == sorted(line["custom_id"] for line in many)

    # A file with bad lines: the batch is `failed`, each bad line named, nothing queued.
    bad = [chat_line(f"{tag}-ok", "fine"), completion_line(f"{tag}-wrong-endpoint", "x"), {"custom_id": "no body"}]
    refused_file = client.files.create(file=("bad.jsonl", jsonl(bad)), purpose="batch")
    refused = client.batches.create(
        input_file_id=refused_file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert refused.status == "failed" and refused.failed_at is not None
    assert [(error.line, error.code) for error in refused.errors.data] == [
        (2, "invalid_request"),
        (3, "invalid_request"),
    ]
    assert "/v1/chat/completions" in refused.errors.data[0].message
    assert requests.get(f"{api_server.base_url}/batches/{refused.id}", timeout=10).status_code == 404
    with pytest.raises(openai.APIStatusError) as unknown_endpoint:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert unknown_endpoint.value.status_code in (400, 422) and "endpoint" in unknown_endpoint.value.message


def test_openai_batch_lines_through_post_batches_with_openai_results(api_server):
    tag = uuid.uuid4().hex[:6]
    lines = [chat_line(f"{tag}-chat-{i}", f"Chào {i}") for i in range(3)]
    lines += [completion_line(f"{tag}-text-{i}", f"Once {i}") for i in range(3)]
    response = requests.post(f"{api_server.base_url}/batches", data=jsonl(lines), headers=JSONL, timeout=30)
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    assert wait_for_batch(api_server.base_url, batch_id)["counts"]["succeeded"] == 6
    got = requests.get(f"{api_server.base_url}/batches/{batch_id}/results?format=openai", timeout=30)
    assert got.status_code == 200 and got.headers["Content-Type"].startswith("application/jsonl")
    results = parse_lines(got.text)
    assert [line["custom_id"] for line in results] == [line["custom_id"] for line in lines]
    for line in results:
        body = line["response"]["body"]
        expected = "chat.completion" if "-chat-" in line["custom_id"] else "text_completion"
        assert line["id"].startswith("batch_req_") and line["error"] is None and body["object"] == expected
    assert all(line["response"]["body"]["usage"]["completion_tokens"] == 4 for line in results[3:])  # ignore_eos

    # A bad line refuses the whole batch, naming the line; nothing is queued.
    bad = lines[:2] + [chat_line(f"{tag}-bad", "x") | {"url": "/v1/embeddings"}, chat_line(f"{tag}-n", "x")]
    bad[3]["body"]["n"] = 17  # past MAX_CHOICES
    refused = requests.post(f"{api_server.base_url}/batches", data=jsonl(bad), headers=JSONL, timeout=30)
    assert refused.status_code == 422
    named = refused.json()["error"]["lines"]
    assert [line["line"] for line in named] == [3, 4] and "url" in named[0]["message"] and "n" in named[1]["message"]
    wrong_format = requests.get(f"{api_server.base_url}/batches/{batch_id}/results?format=csv", timeout=10)
    assert wrong_format.status_code == 422


def test_submit_script_takes_an_openai_batch_file(api_server, tmp_path: Path):
    tag = uuid.uuid4().hex[:6]
    source = tmp_path / "openai-batch.jsonl"
    source.write_bytes(jsonl([chat_line(f"{tag}-{i}", f"Hỏi {i}") for i in range(5)]))
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.submit_batch", str(source), str(out), "--url", api_server.base_url,
         "--output-format", "openai", "--poll-interval", "0.2", "--max-tokens", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    got = parse_lines(out.read_text(encoding="utf-8"))
    assert sorted(line["custom_id"] for line in got) == sorted(f"{tag}-{i}" for i in range(5))
    assert all(line["response"]["body"]["object"] == "chat.completion" for line in got)
    # The file's own max_tokens wins over the script's default for lines that set it.
    assert all(line["response"]["body"]["usage"]["completion_tokens"] <= 4 for line in got)


def test_files_and_batches_are_per_key(keyed_api):
    owner, other = client_for(keyed_api, KEY_A), client_for(keyed_api, KEY_B)
    lines = [chat_line("k-1", "hello")]
    window = {"endpoint": "/v1/chat/completions", "completion_window": "24h"}
    uploaded = owner.files.create(file=("mine.jsonl", jsonl(lines)), purpose="batch")
    created = owner.batches.create(input_file_id=uploaded.id, **window)
    for attempt in (
        lambda: other.files.retrieve(uploaded.id),
        lambda: other.files.content(uploaded.id),
        lambda: other.files.delete(uploaded.id),
        lambda: other.batches.create(input_file_id=uploaded.id, **window),
        lambda: other.batches.retrieve(created.id),
        lambda: other.batches.cancel(created.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert uploaded.id not in [file.id for file in other.files.list()]
    assert created.id not in [batch.id for batch in other.batches.list()]
    with pytest.raises(openai.AuthenticationError):
        client_for(keyed_api, "not-a-key").files.list()
    assert wait_for_openai_batch(owner, created.id).status == "completed"
    assert owner.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        owner.files.retrieve(uploaded.id)
    with pytest.raises(openai.APIStatusError) as not_batch:
        owner.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    assert not_batch.value.status_code in (400, 422) and "purpose" in not_batch.value.message
