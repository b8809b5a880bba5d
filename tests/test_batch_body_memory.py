"""A batch body is read as a stream: a million tiny lines are refused at the line cap, in memory near the body's."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from api.app import create_app
from core.batches.model import MAX_BATCH_LINES
from tests.conftest import queue_length, unconsumed_queue_name


@pytest.fixture
def quiet_client(make_settings, request):
    queue = unconsumed_queue_name(request)
    return create_app(make_settings(gpu_queue=queue)).test_client(), queue


def peak_bytes_of(call) -> tuple[object, int]:
    """What `call()` returns, and the most memory Python allocated while it ran."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_million_tiny_lines_are_refused_without_memory_growing_with_them(quiet_client, redis_server):
    client, queue = quiet_client
    body = b"{}\n" * 1_000_000
    response, peak = peak_bytes_of(lambda: client.post("/batches", data=body, content_type="application/jsonl"))
    assert response.status_code == 422
    assert f"more than {MAX_BATCH_LINES} lines" in response.get_json()["error"]["message"]
    # The test client copies the body once; the API adds little beside it (it used to take ~45x the body).
    assert peak < 3 * len(body), (peak, len(body))
    assert queue_length(redis_server.url, queue) == 0


def test_a_million_item_json_list_is_refused_the_same_way(quiet_client):
    client, _ = quiet_client
    body = b"[" + b",".join([b"{}"] * 1_000_000) + b"]"
    response, peak = peak_bytes_of(lambda: client.post("/batches", data=body, content_type="application/jsonl"))
    assert response.status_code == 422 and "more than" in response.get_json()["error"]["message"]
    assert peak < 3 * len(body), (peak, len(body))


def line(number: int) -> dict:
    return {"custom_id": f"line-{number}", "body": {"prompt": f"câu số {number}", "max_tokens": 4}}


# Each well over the 64 KiB the API reads at a time, so lines and items straddle the reads.
FORMS = {
    "jsonl with a byte order mark and CRLF": b"\xef\xbb\xbf"
    + b"\r\n\r\n".join(json.dumps(line(n), ensure_ascii=False).encode() for n in range(3000)),
    "json list with spaces": b"  [" + b" ,\n ".join(json.dumps(line(n)).encode() for n in range(3000)) + b" ]\n",
    "envelope": json.dumps({"requests": [line(n) for n in range(3000)], "metadata": {"k": "v"}}).encode(),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_is_read_across_chunk_boundaries(quiet_client, form):
    client, _ = quiet_client
    body = FORMS[form]
    assert len(body) > 2 * 64 * 1024
    response = client.post("/batches", data=body, content_type="application/jsonl")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["total"] == 3000


def test_a_body_over_the_limit_is_a_413(make_settings, request):
    client = create_app(
        make_settings(gpu_queue=unconsumed_queue_name(request), max_batch_body_bytes=4096)
    ).test_client()
    response = client.post(
        "/batches", data=b'{"custom_id": "a", "body": {"prompt": "x"}}\n' * 200, content_type="application/jsonl"
    )
    assert response.status_code == 413


def test_an_envelope_of_a_million_tiny_lines_is_refused_at_the_line_cap_without_holding_it(quiet_client):
    client, _ = quiet_client
    body = b'{"requests": [' + b",".join([b"{}"] * 1_000_000) + b"]}"
    response, peak = peak_bytes_of(lambda: client.post("/batches", data=body, content_type="application/json"))
    assert response.status_code == 422
    assert f"more than {MAX_BATCH_LINES} lines" in response.get_json()["error"]["message"]
    assert peak < 3 * len(body), (peak, len(body))  # parsed whole, it took 25x the body


def test_a_32_mib_envelope_is_read_to_its_end_within_three_times_its_size(quiet_client, redis_server):
    client, queue = quiet_client
    lines = [json.dumps({"custom_id": f"l{n}", "body": {"prompt": "x" * 16_000, "max_tokens": 4}}) for n in range(2100)]
    # Every line is read and validated; the key after them refuses the batch, so only the reading is measured.
    body = ('{"webhook": null, "requests": [' + ",".join(lines) + '], "metadata": {"k": "v"}, "notes": 1}').encode()
    assert len(body) > 32 * 2**20
    response, peak = peak_bytes_of(lambda: client.post("/batches", data=body, content_type="application/json"))
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == "notes"
    assert peak < 3 * len(body), (peak, len(body))
    assert queue_length(redis_server.url, queue) == 0
