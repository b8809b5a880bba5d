"""Native batches: submit JSONL or JSON, read, list, results in both formats, cancel."""

from __future__ import annotations

import json

LINES = [{"custom_id": f"line-{n}", "body": {"prompt": f"Prompt {n}", "max_tokens": 2}} for n in range(3)]
JSONL = "".join(json.dumps(line) + "\n" for line in LINES)


def submit(api, data: str = JSONL, content_type: str = "application/jsonl"):
    return api.client.post("/batches", data=data, headers=api.headers, content_type=content_type)


def test_a_jsonl_batch_queues_every_line_at_batch_priority(api):
    response = submit(api)
    assert response.status_code == 202
    batch = response.get_json()
    assert batch["status"] == "queued" and batch["total"] == 3 and batch["counts"]["queued"] == 3
    assert response.headers["Location"] == f"/batches/{batch['id']}"
    assert len(api.queue.published) == 3 and {priority for _, priority in api.queue.published} == {"batch"}


def test_a_json_list_and_an_envelope_are_batches_too(api):
    assert submit(api, json.dumps(LINES), "application/json").get_json()["total"] == 3
    envelope = {"requests": LINES[:2], "metadata": {"team": "a"}}
    batch = submit(api, json.dumps(envelope), "application/json").get_json()
    assert batch["total"] == 2 and batch["metadata"] == {"team": "a"}


def test_one_bad_line_refuses_the_whole_batch_and_queues_nothing(api):
    bad = JSONL + json.dumps({"custom_id": "bad", "body": {"prompt": "x", "max_tokens": -1}}) + "\n"
    response = submit(api, bad)
    assert response.status_code == 422
    assert api.queue.published == []
    assert submit(api, JSONL, "text/plain").status_code == 415


def test_a_finished_batch_reads_completed_with_results_in_input_order(answering_api):
    batch = submit(answering_api).get_json()
    read = answering_api.client.get(f"/batches/{batch['id']}", headers=answering_api.headers).get_json()
    assert read["status"] == "completed" and read["counts"]["succeeded"] == 3
    results = answering_api.client.get(f"/batches/{batch['id']}/results", headers=answering_api.headers)
    assert results.mimetype == "application/jsonl"
    lines = [json.loads(line) for line in results.data.decode().splitlines()]
    assert [line["custom_id"] for line in lines] == ["line-0", "line-1", "line-2"]
    assert {line["status"] for line in lines} == {"succeeded"} and lines[0]["output"]["text"] == "Bonjour"


def test_openai_format_results_are_batch_output_lines(answering_api):
    batch = submit(answering_api).get_json()
    path = f"/batches/{batch['id']}/results"
    lines = answering_api.client.get(f"{path}?format=openai", headers=answering_api.headers).data.decode().splitlines()
    first = json.loads(lines[0])
    assert first["custom_id"] == "line-0" and first["response"]["status_code"] == 200
    assert answering_api.client.get(f"{path}?format=csv", headers=answering_api.headers).status_code == 422


def test_listing_pages_newest_first(api):
    ids = [submit(api).get_json()["id"] for _ in range(2)]
    page = api.client.get("/batches?limit=1", headers=api.headers).get_json()
    assert [b["id"] for b in page["data"]] == [ids[1]]
    rest = api.client.get(f"/batches?limit=1&cursor={page['next_cursor']}", headers=api.headers).get_json()
    assert [b["id"] for b in rest["data"]] == [ids[0]]


def test_cancel_cancels_the_queued_lines_and_a_completed_batch_is_409(api, answering_api):
    batch = submit(api).get_json()
    canceled = api.client.post(f"/batches/{batch['id']}/cancel", headers=api.headers)
    assert canceled.status_code == 200
    assert canceled.get_json()["canceled_now"] == 3 and canceled.get_json()["status"] == "canceled"
    done = submit(answering_api).get_json()
    assert answering_api.client.post(f"/batches/{done['id']}/cancel", headers=answering_api.headers).status_code == 409
