"""Batches end to end: real API, Redis and worker; the submission script as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
import requests

from api.app import create_app
from core.jobs.model import parse_iso, utc_now_iso
from core.redis.keys import JOB_KEY
from tests.conftest import ROOT, queue_length, unconsumed_queue_name
from tests.jsonl import json_lines
from tests.polling import poll_until, wait_for_terminal
from tests.test_job_spine import submit

# POST /batches takes only a declared JSON or JSONL body.
JSONL = {"Content-Type": "application/jsonl"}


def batch_lines(count: int, tag: str, **body) -> list[dict]:
    return [
        {"custom_id": f"{tag}-{i}", "body": {"prompt": f"{tag} câu {i}", "max_tokens": 4, "ignore_eos": True} | body}
        for i in range(count)
    ]


def post_batch(base_url: str, lines: list[dict], as_jsonl: bool = True) -> dict:
    data = "\n".join(json.dumps(line) for line in lines) if as_jsonl else json.dumps(lines)
    response = requests.post(f"{base_url}/batches", data=data.encode(), headers=JSONL, timeout=120)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/batches/{response.json()['id']}"
    return response.json()


def get_batch(base_url: str, batch_id: str) -> dict:
    return requests.get(f"{base_url}/batches/{batch_id}", timeout=10).json()


def wait_for_batch(base_url: str, batch_id: str, timeout_s: float = 120) -> dict:
    return poll_until(
        lambda: get_batch(base_url, batch_id),
        lambda batch: batch["completed_at"] is not None,
        timeout_s,
        f"batch {batch_id} to finish",
        interval_s=0.1,
    )


def results(base_url: str, batch_id: str) -> list[dict]:
    response = requests.get(f"{base_url}/batches/{batch_id}/results", timeout=120)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/jsonl")
    return json_lines(response.text)


def test_200_line_batch_completes_with_results_in_input_order(api_server):
    lines = batch_lines(200, f"b200-{uuid.uuid4().hex[:6]}")
    batch = post_batch(api_server.base_url, lines)
    assert batch["status"] in ("queued", "running") and batch["total"] == 200
    done = wait_for_batch(api_server.base_url, batch["id"])
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 200
    assert done["usage"]["completion_tokens"] > 0 and done["started_at"] <= done["completed_at"]
    got = results(api_server.base_url, batch["id"])
    assert [r["custom_id"] for r in got] == [line["custom_id"] for line in lines]
    assert all(r["status"] == "succeeded" and r["usage"]["completion_tokens"] == 4 for r in got)
    job = requests.get(f"{api_server.base_url}/jobs/{got[0]['job_id']}", timeout=5).json()
    assert job["batch_id"] == batch["id"] and job["custom_id"] == lines[0]["custom_id"]
    listed = requests.get(f"{api_server.base_url}/batches?limit=100", timeout=5).json()["data"]
    assert batch["id"] in [b["id"] for b in listed]


def test_batch_as_a_json_list_is_accepted_too(api_server):
    lines = batch_lines(3, f"list-{uuid.uuid4().hex[:6]}")
    batch = post_batch(api_server.base_url, lines, as_jsonl=False)
    assert wait_for_batch(api_server.base_url, batch["id"])["counts"]["succeeded"] == 3


@pytest.fixture
def quiet_client(make_settings, request):
    """The API on a queue no worker reads, so queue lengths can be counted exactly."""
    queue = unconsumed_queue_name(request)
    return create_app(make_settings(gpu_queue=queue)).test_client(), queue


def test_bad_lines_refuse_the_whole_batch_and_name_each_line(quiet_client, redis_server):
    client, queue = quiet_client
    lines = [json.dumps(line) for line in batch_lines(100, "bad")]
    lines[9] = json.dumps({"custom_id": "bad-9", "body": {"prompt": 42}})
    lines[49] = "{not json"
    lines[89] = json.dumps({"custom_id": "bad-0", "body": {"prompt": "duplicate id"}})
    response = client.post("/batches", data="\n".join(lines), content_type="application/jsonl")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["type"] == "invalid_input"
    assert [item["line"] for item in error["lines"]] == [10, 50, 90]
    assert "prompt" in error["lines"][0]["message"] and "more than once" in error["lines"][2]["message"]
    assert queue_length(redis_server.url, queue) == 0


def test_lines_take_the_sampling_rules_and_bad_ones_name_their_line(quiet_client, redis_server):
    client, queue = quiet_client
    rules = {"presence_penalty": 1.0, "frequency_penalty": 0.5, "min_tokens": 2, "stop_token_ids": [3]}
    bad = [{"custom_id": "x", "body": {"prompt": "a", "presence_penalty": 5}}]
    lines = "\n".join(json.dumps(line) for line in batch_lines(2, "r", **rules) + bad)
    response = client.post("/batches", data=lines, content_type="application/jsonl")
    assert response.status_code == 422
    (line,) = response.get_json()["error"]["lines"]
    assert line["line"] == 3 and "presence_penalty" in line["message"]
    assert queue_length(redis_server.url, queue) == 0
    good = "\n".join(json.dumps(line) for line in batch_lines(2, "r", **rules))
    assert client.post("/batches", data=good, content_type="application/jsonl").status_code == 202
    assert queue_length(redis_server.url, queue) == 2


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"[1, 2", b'{"custom_id": "x"}', b'{"custom_id": "x", "body": {"prompt": "a", "webhook": "x"}}'],
)
def test_other_bad_batches_are_422(quiet_client, redis_server, body):
    client, queue = quiet_client
    response = client.post("/batches", data=body, content_type="application/jsonl")
    assert response.status_code == 422 and response.get_json()["error"]["type"] == "invalid_input"
    assert queue_length(redis_server.url, queue) == 0


def test_unknown_batch_is_404(quiet_client):
    client, _ = quiet_client
    for path in ("/batches/nope", "/batches/nope/results"):
        assert client.get(path).status_code == 404
    assert client.post("/batches/nope/cancel").status_code == 404


def test_cancel_midway_keeps_finished_results_and_never_runs_the_rest(api_server):
    lines = batch_lines(300, f"cancel-{uuid.uuid4().hex[:6]}", max_tokens=48, ignore_eos=True)
    batch = post_batch(api_server.base_url, lines)
    poll_until(
        lambda: get_batch(api_server.base_url, batch["id"]),
        lambda batch: batch["counts"]["succeeded"] >= 10,
        60,
        "10 lines of the batch to succeed",
    )
    canceled = requests.post(f"{api_server.base_url}/batches/{batch['id']}/cancel", timeout=60).json()
    assert canceled["status"] == "canceled" and canceled["canceled_now"] > 0
    done = wait_for_batch(api_server.base_url, batch["id"])
    counts = done["counts"]
    assert counts["queued"] == 0 and counts["running"] == 0
    assert counts["succeeded"] >= 10 and counts["canceled"] == canceled["canceled_now"]
    assert counts["succeeded"] + counts["canceled"] == 300
    got = results(api_server.base_url, batch["id"])
    assert [r["custom_id"] for r in got] == [line["custom_id"] for line in lines]
    assert all(r["usage"]["completion_tokens"] == 48 for r in got if r["status"] == "succeeded")
    for r in (r for r in got if r["status"] == "canceled"):
        job = requests.get(f"{api_server.base_url}/jobs/{r['job_id']}", timeout=5).json()
        assert job["started_at"] is None and job["attempts"] == 0
        break
    again = requests.post(f"{api_server.base_url}/batches/{batch['id']}/cancel", timeout=60).json()
    assert again["canceled_now"] == 0


def test_single_job_starts_before_a_queued_batch(api_server, redis_server):
    lines = batch_lines(500, f"prio-{uuid.uuid4().hex[:6]}", max_tokens=32, ignore_eos=True)
    batch = post_batch(api_server.base_url, lines)
    # Lines that started before the single job was even sent say nothing of the queue's order (on a loaded machine
    # the client and the API may take a while): count from its submission.
    submitted = parse_iso(utc_now_iso())
    single = wait_for_terminal(
        api_server.base_url, submit(api_server.base_url, {"prompt": "Tôi trước", "max_tokens": 4})["id"]
    )
    requests.post(f"{api_server.base_url}/batches/{batch['id']}/cancel", timeout=60)
    wait_for_batch(api_server.base_url, batch["id"])
    started = [
        parse_iso(job["started_at"])
        for r in results(api_server.base_url, batch["id"])
        if (job := requests.get(f"{api_server.base_url}/jobs/{r['job_id']}", timeout=5).json())["started_at"]
    ]
    single_started = parse_iso(single["started_at"])
    before = sum(submitted <= moment < single_started for moment in started)
    # Only jobs the worker already held may start before it: 8 running and 8 waiting for a place (the worker takes
    # 2 x MAX_BATCH_SIZE messages), and the places that 8 jobs finishing together free before it is taken go to
    # those waiting; from then on it goes ahead of every batch line (places are given by priority).
    assert before <= 3 * 8, (before, len(started))
    assert any(moment > single_started for moment in started) or len(started) <= 3 * 8


def count_jobs_tagged(redis_url: str, tag: str) -> int:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = list(client.scan_iter(match=JOB_KEY.format(job_id="*"), count=1000))
    return sum(tag in (raw or "") for raw in client.mget(keys)) if keys else 0


@pytest.mark.parametrize("mode", ["jobs", "batch"])
def test_script_killed_halfway_resumes_without_duplicates(api_server, redis_server, tmp_path, mode):
    tag = f"script-{mode}-{uuid.uuid4().hex[:8]}"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"{tag} prompt {i}" for i in range(30)) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    command = [
        sys.executable, "-m", "scripts.submit_batch", str(prompts), str(out), "--url", api_server.base_url,
        "--mode", mode, "--concurrency", "2", "--max-tokens", "40", "--poll-interval", "0.2",
    ]  # fmt: skip
    first = subprocess.Popen(
        command + ["--temperature", "0.9"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not (out.exists() and len(json_lines(out.read_text())) >= 5):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    written_before = len(json_lines(out.read_text()))
    second = subprocess.run(command + ["--temperature", "0.9"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    got = json_lines(out.read_text())
    assert sorted(r["custom_id"] for r in got) == sorted(f"line-{i}" for i in range(1, 31))
    assert all(r["status"] == "succeeded" for r in got)
    assert written_before < 30 and "resuming" in second.stdout
    assert count_jobs_tagged(redis_server.url, tag) == 30


def test_script_reads_csv_and_reports_failures_with_exit_code(api_server_without_model, tmp_path):
    api_server = api_server_without_model  # its lines fail on the worker (an API that reads the model refuses them)
    source = tmp_path / "in.csv"
    source.write_text('custom_id,prompt\nok,"Xin chào, bạn"\ntoo-long,' + "x" * 10 + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.submit_batch", str(source), str(out), "--url", api_server.base_url,
         "--max-tokens", "2047", "--greedy"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    got = {line["custom_id"]: line for line in json_lines(out.read_text())}
    assert set(got) == {"ok", "too-long"}
    assert got["ok"]["status"] == "failed" and got["ok"]["error"]["type"] == "invalid_input"
    assert result.returncode == 1 and "2 failed" in result.stdout


def test_script_results_keep_one_line_each_and_resume_past_a_raw_line_separator(tmp_path):
    from scripts.submit_batch import Output, read_inputs

    out = tmp_path / "out.jsonl"
    # A result written before separators were escaped: its text holds a raw U+2028 (valid JSON inside a string).
    out.write_text('{"custom_id": "a", "status": "succeeded", "output": {"text": "x\u2028y"}}\n', encoding="utf-8")
    output = Output(out).load()
    assert output.done == {"a": "succeeded"}
    assert output.append({"custom_id": "b", "status": "succeeded", "output": {"text": "p\u2029q\x85r"}})
    assert [line["output"]["text"] for line in json_lines(out.read_text(encoding="utf-8"))] == [
        "x\u2028y",
        "p\u2029q\x85r",
    ]
    written = out.read_text(encoding="utf-8").split("\n")[1]
    assert written.splitlines() == [written]  # the new line is escaped: one line for any reader
    prompts = tmp_path / "in.jsonl"
    prompts.write_text('{"custom_id": "c", "body": {"prompt": "một\u2028hai"}}\n', encoding="utf-8")
    assert [line.body["prompt"] for line in read_inputs(prompts, {})] == ["một\u2028hai"]
