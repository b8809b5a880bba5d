"""A table of bad requests: each gets its documented 4xx in the one error shape, and nothing is stored or enqueued.

The Flask app runs in process against the test Redis, on a queue no worker reads, under an API key of its own so
the caller's job and batch listings count exactly what these requests stored.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from api.app import create_app
from launcher.redis_server import free_port
from tests.conftest import queue_length, unconsumed_queue_name

API_KEY = "bad-requests-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_PROMPT_CHARS = 1000
MAX_BODY_BYTES = 8192
GOOD = {"prompt": "Xin chào", "max_tokens": 8}
JOB_ID = uuid.uuid4().hex
BATCH_ID = f"batch_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Bad:
    """One bad request and the answer it must get."""

    name: str
    status: int
    error_type: str
    field: str | None = None
    method: str = "POST"
    path: str = "/jobs"
    json: Any = None
    data: bytes | str | None = None
    content_type: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=lambda: dict(AUTH))


def body(name: str, payload: dict, error_field: str | None, path: str = "/jobs") -> Bad:
    """A JSON body (sent as application/json) that validation refuses with 422 naming `error_field`."""
    return Bad(name, 422, "invalid_input", error_field, path=path, json=payload)


def raw(name: str, text: str, error_field: str | None) -> Bad:
    """JSON text Python's encoder would never write (NaN, Infinity, lone surrogates), refused with 422."""
    return Bad(name, 422, "invalid_input", error_field, data=text.encode(), content_type="application/json")


def jsonl(name: str, lines: list[str], status: int = 422, error_type: str = "invalid_input", **kwargs) -> Bad:
    """A batch body, sent as application/jsonl unless `content_type` says otherwise."""
    kwargs.setdefault("content_type", "application/jsonl")
    return Bad(name, status, error_type, path="/batches", data="\n".join(lines).encode(), **kwargs)


LINE = json.dumps({"custom_id": "a", "body": GOOD})

TABLE = [
    # Each field out of range, of the wrong type, or a number in disguise.
    body("max_tokens zero", {**GOOD, "max_tokens": 0}, "max_tokens"),
    body("max_tokens over the limit", {**GOOD, "max_tokens": 100_000}, "max_tokens"),
    body("max_tokens as a string", {**GOOD, "max_tokens": "10"}, "max_tokens"),
    body("max_tokens as a boolean", {**GOOD, "max_tokens": True}, "max_tokens"),
    body("max_tokens fractional", {**GOOD, "max_tokens": 1.5}, "max_tokens"),
    body("max_tokens null", {**GOOD, "max_tokens": None}, "max_tokens"),
    body("temperature negative", {**GOOD, "temperature": -0.1}, "temperature"),
    body("temperature above 5", {**GOOD, "temperature": 5.1}, "temperature"),
    body("temperature that overflows sampling", {**GOOD, "temperature": 0.005}, "temperature"),
    body("temperature as a string", {**GOOD, "temperature": "0.7"}, "temperature"),
    body("temperature as a boolean", {**GOOD, "temperature": False}, "temperature"),
    raw("temperature NaN", '{"prompt": "a", "temperature": NaN}', "temperature"),
    raw("temperature Infinity", '{"prompt": "a", "temperature": Infinity}', "temperature"),
    body("top_p zero", {**GOOD, "top_p": 0}, "top_p"),
    body("top_p above 1", {**GOOD, "top_p": 1.01}, "top_p"),
    raw("top_p -Infinity", '{"prompt": "a", "top_p": -Infinity}', "top_p"),
    body("do_sample as a string", {**GOOD, "do_sample": "true"}, "do_sample"),
    body("do_sample as a number", {**GOOD, "do_sample": 1}, "do_sample"),
    body("top_k zero", {**GOOD, "top_k": 0}, "top_k"),
    body("top_k as a boolean", {**GOOD, "top_k": True}, "top_k"),
    body("repetition_penalty zero", {**GOOD, "repetition_penalty": 0}, "repetition_penalty"),
    raw("repetition_penalty NaN", '{"prompt": "a", "repetition_penalty": NaN}', "repetition_penalty"),
    body("seed negative", {**GOOD, "seed": -1}, "seed"),
    body("seed past 63 bits", {**GOOD, "seed": 2**63}, "seed"),
    body("seed as a string", {**GOOD, "seed": "42"}, "seed"),
    body("priority unknown", {**GOOD, "priority": "urgent"}, "priority"),
    body("webhook_events unknown", {**GOOD, "webhook_events": ["finished"]}, "webhook_events.0"),
    body("ignore_eos as a string", {**GOOD, "ignore_eos": "no"}, "ignore_eos"),
    # The prompt and the messages.
    body("empty prompt", {"prompt": ""}, "prompt"),
    body("prompt over MAX_PROMPT_CHARS", {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
    body("prompt as a number", {"prompt": 42}, "prompt"),
    body("neither prompt nor messages", {"max_tokens": 8}, None),
    body("both prompt and messages", {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, None),
    body("messages empty", {"messages": []}, "messages"),
    body("messages as a string", {"messages": "hello"}, "messages"),
    body("message with an unknown role", {"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    body("message without content", {"messages": [{"role": "user"}]}, "messages.0.content"),
    body("message content as a number", {"messages": [{"role": "user", "content": 1}]}, "messages.0.content"),
    body("message with an unknown key", {"messages": [{"role": "user", "content": "a", "x": 1}]}, "messages.0.x"),
    body("messages over the prompt limit", {"messages": [{"role": "user", "content": "x" * 1001}]}, "prompt"),
    # Stop strings.
    body("too many stop strings", {**GOOD, "stop": [str(i) for i in range(17)]}, "stop"),
    body("empty stop string", {**GOOD, "stop": [""]}, "stop"),
    body("over-long stop string", {**GOOD, "stop": ["x" * 257]}, "stop"),
    body("stop as a number", {**GOOD, "stop": 5}, "stop"),
    # NUL characters and lone surrogates in any string field.
    raw("lone surrogate in a stop string", '{"prompt": "x", "stop": ["\\ud800"]}', "stop.0"),
    raw("lone surrogate as the stop string", '{"prompt": "x", "stop": "\\udfff"}', "stop"),
    raw("lone surrogate in the prompt", '{"prompt": "a\\udc00b"}', "prompt"),
    raw("NUL in the prompt", '{"prompt": "a\\u0000b"}', "prompt"),
    raw("NUL in message content", '{"messages": [{"role": "user", "content": "\\u0000"}]}', "messages.0.content"),
    raw("lone surrogate in a metadata value", '{"prompt": "x", "metadata": {"k": "\\ud83d"}}', "metadata.k"),
    raw("lone surrogate in a metadata key", '{"prompt": "x", "metadata": {"\\ud83d": "v"}}', "metadata"),
    raw("NUL in a metadata key", '{"prompt": "x", "metadata": {"a\\u0000": "v"}}', "metadata"),
    raw("NUL in the webhook URL", '{"prompt": "x", "webhook": "https://example.com/\\u0000"}', "webhook"),
    raw("lone surrogate in a field name", '{"prompt": "x", "\\ud800": 1}', None),
    body("metadata with too many keys", {**GOOD, "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    body("metadata value as a number", {**GOOD, "metadata": {"k": 1}}, "metadata.k"),
    body("unknown field", {**GOOD, "temprature": 0.5}, "temprature"),
    body("body is a list", ["prompt"], None),  # type: ignore[arg-type]
    body("body is a string", "prompt", None),  # type: ignore[arg-type]
    # Bodies that are not JSON, too large, or not sent as JSON.
    Bad("invalid JSON", 400, "malformed_body", data=b"{not json", content_type="application/json"),
    Bad("empty body", 400, "malformed_body", data=b"", content_type="application/json"),
    Bad("non-UTF-8 bytes", 400, "malformed_body", data=b'{"prompt": "\xff\xfe"}', content_type="application/json"),
    Bad("body too large", 413, "body_too_large", json={"prompt": "x" * MAX_BODY_BYTES}),
    Bad("text/plain body", 415, "unsupported_media_type", data=json.dumps(GOOD), content_type="text/plain"),
    Bad(
        "form-encoded body",
        415,
        "unsupported_media_type",
        data="prompt=hello",
        content_type="application/x-www-form-urlencoded",
    ),
    Bad("multipart body", 415, "unsupported_media_type", data=b"--x--", content_type="multipart/form-data; boundary=x"),
    Bad("no Content-Type", 415, "unsupported_media_type", data=json.dumps(GOOD)),
    Bad(
        "text/plain on /v1/generate",
        415,
        "unsupported_media_type",
        path="/v1/generate",
        data="{}",
        content_type="text/plain",
    ),
    Bad(
        "lone surrogate on /v1/generate",
        422,
        "invalid_input",
        "stop.0",
        path="/v1/generate",
        data=b'{"prompt": "x", "stop": ["\\ud800"]}',
        content_type="application/json",
    ),
    # Who is calling.
    Bad("no API key", 401, "unauthorized", json=GOOD, headers={}),
    Bad("wrong API key", 401, "unauthorized", json=GOOD, headers={"Authorization": "Bearer nope"}),
    # Ids not shaped like ids, and listing queries.
    Bad("job id of the wrong shape", 404, "not_found", method="GET", path="/jobs/does-not-exist"),
    Bad("job id in upper case", 404, "not_found", method="GET", path=f"/jobs/{JOB_ID.upper()}"),
    Bad("job id one digit short", 404, "not_found", method="GET", path=f"/jobs/{JOB_ID[:-1]}"),
    Bad("unknown job id", 404, "not_found", method="GET", path=f"/jobs/{JOB_ID}"),
    Bad("cancel of a malformed job id", 404, "not_found", path="/jobs/..%2F..%2Fetc/cancel"),
    Bad("batch id of the wrong shape", 404, "not_found", method="GET", path="/batches/nope"),
    Bad("a job id as a batch id", 404, "not_found", method="GET", path=f"/batches/{JOB_ID}"),
    Bad("results of a malformed batch id", 404, "not_found", method="GET", path="/batches/batch_x/results"),
    Bad("cancel of a malformed batch id", 404, "not_found", path="/batches/batch_%00/cancel"),
    Bad("unknown batch id", 404, "not_found", method="GET", path=f"/batches/{BATCH_ID}"),
    Bad("limit not a number", 422, "invalid_input", "limit", method="GET", path="/jobs?limit=abc"),
    Bad("limit zero", 422, "invalid_input", "limit", method="GET", path="/jobs?limit=0"),
    Bad("limit with underscores", 422, "invalid_input", "limit", method="GET", path="/jobs?limit=1_0"),
    Bad("cursor negative", 422, "invalid_input", "cursor", method="GET", path="/batches?cursor=-1"),
    Bad("status unknown", 422, "invalid_input", "status", method="GET", path="/jobs?status=done"),
    Bad("wrong method", 405, "method_not_allowed", method="DELETE", path="/jobs"),
    # Batches.
    # No Content-Type, like text/plain and forms, is what a browser sends cross-site without asking first.
    jsonl("batch without a Content-Type", [LINE], 415, "unsupported_media_type", content_type=None),
    jsonl("batch as text/plain", [LINE], 415, "unsupported_media_type", content_type="text/plain"),
    jsonl("batch as a form", [LINE], 415, "unsupported_media_type", content_type="application/x-www-form-urlencoded"),
    jsonl("batch line not JSON", [LINE, "{not json"], content_type="application/jsonl"),
    jsonl("batch custom_id with a lone surrogate", ['{"custom_id": "\\ud800", "body": {"prompt": "a"}}']),
    jsonl("batch line with NUL in a stop string", ['{"custom_id": "a", "body": {"prompt": "a", "stop": ["\\u0000"]}}']),
    jsonl("batch line with a bad field", [json.dumps({"custom_id": "a", "body": {**GOOD, "top_p": 2}})]),
    jsonl(
        "batch envelope webhook with NUL",
        ['{"requests": [' + LINE + '], "webhook": "https://example.com/\\u0000"}'],
        field="webhook",
        content_type="application/json",
    ),
    jsonl(
        "batch envelope metadata key with a lone surrogate",
        ['{"requests": [' + LINE + '], "metadata": {"\\udfff": "v"}}'],
        field="metadata",
    ),
    jsonl(
        "batch envelope with an unknown key",
        ['{"requests": [' + LINE + '], "defaults": {"max_tokens": 4}}'],
        field="defaults",
        content_type="application/json",
    ),
    jsonl("batch envelope cut short", ['{"requests": [' + LINE], content_type="application/json"),
]


def test_the_table_is_large():
    assert len(TABLE) >= 40
    assert len({bad.name for bad in TABLE}) == len(TABLE)


@pytest.fixture
def quiet(make_settings, request):
    queue = unconsumed_queue_name(request)
    settings = make_settings(
        gpu_queue=queue, api_keys=[API_KEY], max_prompt_chars=MAX_PROMPT_CHARS, max_body_bytes=MAX_BODY_BYTES
    )
    return create_app(settings).test_client(), queue


def _stored(client) -> tuple[int, int]:
    jobs = client.get("/jobs?limit=100", headers=AUTH).get_json()["data"]
    batches = client.get("/batches?limit=100", headers=AUTH).get_json()["data"]
    return len(jobs), len(batches)


@pytest.mark.parametrize("bad", TABLE, ids=[bad.name for bad in TABLE])
def test_bad_request_gets_its_4xx_and_stores_nothing(quiet, redis_server, bad: Bad):
    client, queue = quiet
    before = _stored(client)
    kwargs: dict[str, Any] = {"headers": bad.headers}
    if bad.json is not None:
        kwargs["json"] = bad.json
    if bad.data is not None:
        kwargs["data"] = bad.data
    if bad.content_type is not None:
        kwargs["content_type"] = bad.content_type
    response = client.open(bad.path, method=bad.method, **kwargs)
    assert response.status_code == bad.status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    answer = json.loads(response.get_data())  # strict UTF-8 JSON: no lone surrogate is ever echoed back
    assert set(answer) == {"error"}
    error = answer["error"]
    assert set(error) <= {"type", "message", "field", "lines"}
    assert error["type"] == bad.error_type and error["message"]
    assert error.get("field") == bad.field
    assert _stored(client) == before == (0, 0)
    assert queue_length(redis_server.url, queue) == 0


def test_a_good_request_is_stored_so_the_counts_above_mean_something(quiet, redis_server):
    client, queue = quiet
    assert client.post("/jobs", json=GOOD, headers=AUTH).status_code == 202
    assert client.post("/batches", data=LINE, content_type="application/x-ndjson", headers=AUTH).status_code == 202
    assert _stored(client) == (1, 1)  # the batch line is a job of the batch, not in the job listing
    assert queue_length(redis_server.url, queue) == 2


@pytest.mark.parametrize("media_type", ["application/jsonl", "application/x-ndjson", "application/json"])
def test_batch_bodies_are_taken_as_jsonl_or_json(quiet, media_type):
    client, _ = quiet
    data = LINE if media_type != "application/json" else f"[{LINE}]"
    response = client.post("/batches", data=data, content_type=media_type, headers=AUTH)
    assert response.status_code == 202, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/jobs/not-a-job-id", "/batches/not-a-batch-id", "/batches/batch_0/results", "/jobs/x/cancel"]
)
def test_malformed_ids_are_refused_without_touching_redis(make_settings, path):
    # Nothing listens on this port: a lookup would answer 503, so a 404 means Redis was never asked.
    client = create_app(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")).test_client()
    method = "POST" if path.endswith("/cancel") else "GET"
    response = client.open(path, method=method)
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "not_found"
