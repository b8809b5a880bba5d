"""End to end over real HTTP: gunicorn API -> Redis -> Celery worker process -> the tiny real model."""

from __future__ import annotations

import re

import requests

from tests.polling import wait_for_terminal

# The resource-log line's format (see docs/monitoring.md, Resource logs), with the job id on generation lines.
RESOURCE_LOG_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \| "
    r"\[(Before model load|After model load|Before generation|After generation)\] "
    r"GPU: .+ - VRAM: \d+(\.\d+)?GB \(allocated\) / \d+(\.\d+)?GB \(reserved\) \| "
    r"RAM: \d+(\.\d+)?GB/\d+(\.\d+)?GB \(\d+(\.\d+)?%\)"
    r"( \| job [0-9a-f]{32})?$"
)


def submit(base_url: str, body: dict) -> dict:
    response = requests.post(f"{base_url}/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued"
    return job


def run(base_url: str, body: dict) -> dict:
    job = wait_for_terminal(base_url, submit(base_url, body)["id"])
    assert job["status"] == "succeeded", job
    return job


def test_prompt_job_succeeds_with_text_usage_metrics_and_resources(api_server):
    job = run(api_server.base_url, {"prompt": "Hà Nội là thủ đô của nước nào?", "max_tokens": 12})
    assert isinstance(job["output"]["text"], str) and job["output"]["text"].strip()
    assert job["output"]["finish_reason"] in ("stop", "length")
    usage = job["usage"]
    assert 1 <= usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert job["metrics"]["generation_seconds"] > 0 and job["metrics"]["queue_seconds"] >= 0
    assert job["resources"]["before"]["gpu"] == "none"
    assert job["resources"]["after"]["ram_total_gb"] > 0
    assert job["resources"]["batch_size"] == 1
    assert job["attempts"] == 1 and job["worker"].startswith("gpu-test@")
    assert job["started_at"] <= job["completed_at"]
    assert len(job["logs"]) == 2 and all(RESOURCE_LOG_LINE.match(line) for line in job["logs"])
    assert all(job["id"] in line for line in job["logs"])


def test_messages_job_is_rendered_with_the_chat_template(api_server):
    messages = [
        {"role": "system", "content": "Bạn là trợ lý hữu ích."},
        {"role": "user", "content": "Thời tiết Hà Nội hôm nay thế nào?"},
    ]
    job = run(api_server.base_url, {"messages": messages, "max_tokens": 10})
    assert job["output"]["text"].strip()
    assert job["usage"]["completion_tokens"] <= 10
    # The template adds header tokens around every message: far more tokens than the bare contents.
    plain = run(api_server.base_url, {"prompt": messages[1]["content"], "max_tokens": 1})
    assert job["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 8


def test_greedy_decoding_is_deterministic(api_server):
    body = {"prompt": "Phở là món ăn", "max_tokens": 16, "do_sample": False}
    first = run(api_server.base_url, body)
    second = run(api_server.base_url, body)
    assert first["output"]["text"] == second["output"]["text"]


def test_same_seed_gives_same_sample_and_other_seed_differs(api_server):
    body = {"prompt": "Phở là món ăn", "max_tokens": 24, "temperature": 1.0, "top_p": 1.0, "seed": 1234}
    first = run(api_server.base_url, body)
    second = run(api_server.base_url, body)
    other = run(api_server.base_url, body | {"seed": 99})
    assert first["output"]["text"] == second["output"]["text"]
    assert other["output"]["text"] != first["output"]["text"]


def test_stop_string_ends_the_text_before_it(api_server):
    body = {"prompt": "The weather in Hanoi", "max_tokens": 40, "temperature": 1.0, "top_p": 1.0, "seed": 7}
    full = run(api_server.base_url, body)
    text = full["output"]["text"]
    assert full["output"]["finish_reason"] == "length" and len(text) > 12
    stop = text[8:11]
    stopped = run(api_server.base_url, body | {"stop": [stop]})
    assert stopped["output"]["finish_reason"] == "stop"
    assert stopped["output"]["text"] == text[: text.index(stop)]
    assert stop not in stopped["output"]["text"]
    assert stopped["usage"]["completion_tokens"] < full["usage"]["completion_tokens"]


def test_max_tokens_ends_with_length(api_server):
    job = run(api_server.base_url, {"prompt": "Xin chào", "max_tokens": 3, "do_sample": False})
    produced, reason = job["usage"]["completion_tokens"], job["output"]["finish_reason"]
    # Either it used its whole budget, or the model ended on an end-of-sequence token first.
    assert (reason == "length" and produced == 3) or (reason == "stop" and produced <= 3)


def test_prompt_longer_than_the_context_fails_clearly(api_server_without_model):
    api_server = api_server_without_model  # an API that can read the model refuses this at submit
    job = wait_for_terminal(
        api_server.base_url, submit(api_server.base_url, {"prompt": "Xin chào", "max_tokens": 4000})["id"]
    )
    assert job["status"] == "failed"
    assert job["error"]["type"] == "invalid_input" and "context" in job["error"]["message"]


def test_model_loads_once_across_jobs_and_every_log_line_has_the_resource_format(api_server, worker):
    for i in range(5):
        run(api_server.base_url, {"prompt": f"Câu hỏi số {i}", "max_tokens": 4})
    log_lines = (worker.log_dir / "resources.log").read_text(encoding="utf-8").splitlines()
    assert sum("[After model load]" in line for line in log_lines) == 1
    assert sum("[Before model load]" in line for line in log_lines) == 1
    assert sum("[After generation]" in line for line in log_lines) >= 5
    bad = [line for line in log_lines if not RESOURCE_LOG_LINE.match(line)]
    assert not bad, bad
    stdout_lines = [line for line in worker.stdout().splitlines() if "] GPU: " in line]
    assert sum("[After model load]" in line for line in stdout_lines) == 1
    assert all(RESOURCE_LOG_LINE.match(line) for line in stdout_lines)


def test_sync_generate_endpoint_answers_synchronously(api_server):
    body = {"prompt": "Câu hỏi của bạn", "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "do_sample": True}
    response = requests.post(f"{api_server.base_url}/v1/generate", json=body, timeout=60)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["generated_text"] == result["text"] and result["text"]
    assert result["usage"]["completion_tokens"] <= 8
    assert result["metrics"]["generation_seconds"] > 0
    job = requests.get(f"{api_server.base_url}/jobs/{result['id']}", timeout=5).json()
    assert job["status"] == "succeeded" and job["output"]["text"] == result["text"]


def test_listing_is_newest_first_and_paged(api_server):
    ids = [submit(api_server.base_url, {"prompt": f"list {i}", "max_tokens": 1})["id"] for i in range(3)]
    for job_id in ids:
        wait_for_terminal(api_server.base_url, job_id)
    first_page = requests.get(f"{api_server.base_url}/jobs?limit=2", timeout=5).json()
    assert [j["id"] for j in first_page["data"]] == ids[::-1][:2]
    second_page = requests.get(
        f"{api_server.base_url}/jobs?limit=1&cursor={first_page['next_cursor']}", timeout=5
    ).json()
    assert [j["id"] for j in second_page["data"]] == [ids[0]]
    succeeded = requests.get(f"{api_server.base_url}/jobs?status=succeeded&limit=100", timeout=5).json()
    assert all(j["status"] == "succeeded" for j in succeeded["data"])


def test_health_and_readiness_over_http(api_server):
    assert requests.get(f"{api_server.base_url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{api_server.base_url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert any(w["name"].startswith("gpu-test@") for w in ready.json()["workers"])
