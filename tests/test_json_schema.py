"""response_format end to end: real API, Redis and the session's worker at its default batch size; schema jobs
beside plain ones in one continuous batch, OpenAI routes and batch lines, and what is refused at submit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import jsonschema_rs
import requests

from tests.conftest import ROOT
from tests.jsonl import json_lines
from tests.polling import wait_for_terminal
from tests.test_job_spine import submit

# Bounded strings, enums and integer ranges: the random-weight demo model ends such JSON well within max_tokens.
TICKET = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 16},
        "severity": {"enum": ["low", "medium", "high"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 99},
        "tags": {"type": "array", "items": {"enum": ["ui", "db", "api"]}, "maxItems": 2},
    },
    "required": ["title", "severity", "count"],
    "additionalProperties": False,
}
TICKET_FORMAT = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": TICKET, "strict": True}}
VALID_TICKET = jsonschema_rs.validator_for(TICKET)
MAX_TOKENS = 96


def follows_ticket(text: str) -> bool:
    return VALID_TICKET.is_valid(json.loads(text))


def chat_completion(base_url: str, body: dict) -> requests.Response:
    return requests.post(f"{base_url}/v1/chat/completions", json=body, timeout=120)


def test_schema_jobs_beside_plain_jobs_in_one_batch_all_write_valid_json(api_server):
    base = api_server.base_url
    schema_jobs = [
        submit(base, {"prompt": f"Ticket {i}", "max_tokens": MAX_TOKENS, "response_format": TICKET_FORMAT} | sampling)
        for i, sampling in enumerate([{"temperature": 0}, {"temperature": 1.0}, {"temperature": 0.7, "top_k": 40}] * 2)
    ]
    object_job = submit(
        base, {"prompt": "Any object", "max_tokens": MAX_TOKENS, "response_format": {"type": "json_object"}}
    )
    plain_jobs = [submit(base, {"prompt": f"Plain {i}", "max_tokens": 24, "ignore_eos": True}) for i in range(3)]
    chats: list[requests.Response] = []
    chat_body = {"messages": [{"role": "user", "content": "A ticket"}], "max_tokens": MAX_TOKENS}
    chat_body["response_format"] = TICKET_FORMAT
    threads = [threading.Thread(target=lambda: chats.append(chat_completion(base, chat_body))) for _ in range(2)]
    for thread in threads:
        thread.start()
    finished = {job["id"]: wait_for_terminal(base, job["id"]) for job in [*schema_jobs, object_job, *plain_jobs]}
    for thread in threads:
        thread.join(120)
    for job in schema_jobs:
        done = finished[job["id"]]
        assert done["status"] == "succeeded" and done["output"]["finish_reason"] == "stop", done
        assert follows_ticket(done["output"]["text"]), done["output"]["text"]
    assert finished[object_job["id"]]["status"] == "succeeded"
    if finished[object_job["id"]]["output"]["finish_reason"] == "stop":
        assert isinstance(json.loads(finished[object_job["id"]]["output"]["text"]), dict)
    assert all(finished[job["id"]]["usage"]["completion_tokens"] == 24 for job in plain_jobs)
    # They really ran together: some schema job shared the batch with others.
    assert max(finished[job["id"]]["resources"]["batch_size"] for job in schema_jobs) > 1
    assert [answer.status_code for answer in chats] == [200, 200]
    for answer in chats:
        choice = answer.json()["choices"][0]
        assert choice["finish_reason"] == "stop" and follows_ticket(choice["message"]["content"])


def test_an_unenforceable_schema_is_a_422_and_impossible_combinations_are_refused(api_server):
    base = api_server.base_url
    unsatisfiable = {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {"type": "integer", "minimum": 9, "maximum": 1}},
    }
    native = requests.post(f"{base}/jobs", json={"prompt": "x", "response_format": unsatisfiable}, timeout=10)
    assert native.status_code == 422
    assert native.json()["error"]["type"] == "unsupported_schema"
    assert "greater than maximum" in native.json()["error"]["message"]
    openai_answer = chat_completion(
        base, {"messages": [{"role": "user", "content": "x"}], "response_format": unsatisfiable}
    )
    assert openai_answer.status_code == 422
    assert openai_answer.json()["error"]["code"] == "unsupported_schema"
    assert openai_answer.json()["error"]["param"] == "response_format.json_schema.schema"
    clash = {"messages": [{"role": "user", "content": "x"}], "response_format": TICKET_FORMAT, "ignore_eos": True}
    assert chat_completion(base, clash).status_code == 400
    native_clash = {"prompt": "x", "response_format": {"type": "json_object"}, "stop": ["}"]}
    refused = requests.post(f"{base}/jobs", json=native_clash, timeout=10)
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "invalid_input"
    assert refused.json()["error"]["field"] == "response_format"


def test_a_batch_submitted_with_a_schema_file_validates_on_every_line(api_server, tmp_path):
    """20 lines, half native and half OpenAI chat lines, through the submission script's --json-schema."""
    source = tmp_path / "lines.jsonl"
    chat_line = {"method": "POST", "url": "/v1/chat/completions"}
    lines = [
        {"custom_id": f"n{i}", "body": {"prompt": f"Ticket {i}"}} if i % 2 else
        {"custom_id": f"o{i}", "body": {"messages": [{"role": "user", "content": f"Ticket {i}"}]}} | chat_line
        for i in range(20)
    ]  # fmt: skip
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    schema_file = tmp_path / "ticket.json"
    schema_file.write_text(json.dumps(TICKET), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "scripts.submit_batch", str(source), str(out), "--url", api_server.base_url,
         "--json-schema", str(schema_file), "--max-tokens", str(MAX_TOKENS), "--poll-interval", "0.2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    results = json_lines(out.read_text(encoding="utf-8"))
    assert len(results) == 20
    for result in results:
        assert result["output"]["finish_reason"] == "stop", result
        assert follows_ticket(result["output"]["text"]), result["output"]["text"]


def test_every_choice_of_a_schema_job_follows_the_schema_on_its_own(api_server):
    base = api_server.base_url
    # Each choice is its own request in the batch with its own matcher: a shared one would mix their tokens.
    job = submit(
        base,
        {
            "prompt": "Three tickets",
            "max_tokens": MAX_TOKENS,
            "temperature": 1.0,
            "n": 3,
            "response_format": TICKET_FORMAT,
        },
    )
    done = wait_for_terminal(base, job["id"])
    assert done["status"] == "succeeded", done
    choices = done["output"]["choices"]
    assert [choice["index"] for choice in choices] == [0, 1, 2]
    for choice in choices:
        assert choice["finish_reason"] == "stop" and follows_ticket(choice["text"]), choice
