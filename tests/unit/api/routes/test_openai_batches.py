"""The OpenAI batch workflow: upload a file, create a batch from it, read it, download its output."""

from __future__ import annotations

import io
import json

LINES = [
    {"custom_id": f"c-{n}", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "m", "messages": [{"role": "user", "content": f"Hi {n}"}], "max_tokens": 2}}
    for n in range(2)
]  # fmt: skip
JSONL = "".join(json.dumps(line) + "\n" for line in LINES).encode()


def upload(api, content: bytes = JSONL, purpose: str = "batch"):
    data = {"file": (io.BytesIO(content), "input.jsonl"), "purpose": purpose}
    return api.client.post("/v1/files", data=data, headers=api.headers, content_type="multipart/form-data")


def create(api, file_id: str):
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return api.client.post("/v1/batches", json=body, headers=api.headers)


def test_an_uploaded_file_is_listed_read_downloaded_and_deleted(api):
    stored = upload(api).get_json()
    assert stored["object"] == "file" and stored["purpose"] == "batch" and stored["bytes"] == len(JSONL)
    listing = api.client.get("/v1/files", headers=api.headers).get_json()
    assert listing["data"][0]["id"] == stored["id"] and listing["has_more"] is False
    assert api.client.get(f"/v1/files/{stored['id']}/content", headers=api.headers).data == JSONL
    deleted = api.client.delete(f"/v1/files/{stored['id']}", headers=api.headers).get_json()
    assert deleted == {"id": stored["id"], "object": "file", "deleted": True}
    assert api.client.get(f"/v1/files/{stored['id']}", headers=api.headers).status_code == 404


def test_an_upload_needs_a_form_with_file_and_purpose(api):
    assert api.client.post("/v1/files", json={}, headers=api.headers).status_code == 415
    no_purpose = api.client.post(
        "/v1/files", data={"file": (io.BytesIO(JSONL), "a.jsonl")}, headers=api.headers,
        content_type="multipart/form-data",
    )  # fmt: skip
    assert no_purpose.status_code == 400 and no_purpose.get_json()["error"]["param"] == "purpose"


def test_a_batch_from_a_file_runs_its_lines_and_completes_with_an_output_file(answering_api):
    file_id = upload(answering_api).get_json()["id"]
    batch = create(answering_api, file_id).get_json()
    assert batch["object"] == "batch" and batch["input_file_id"] == file_id
    assert [priority for _, priority in answering_api.queue.published] == ["batch", "batch"]
    read = answering_api.client.get(f"/v1/batches/{batch['id']}", headers=answering_api.headers).get_json()
    assert read["status"] == "completed" and read["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    output = answering_api.client.get(f"/v1/files/{read['output_file_id']}/content", headers=answering_api.headers)
    lines = [json.loads(line) for line in output.data.decode().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["c-0", "c-1"]
    assert lines[0]["response"]["body"]["choices"][0]["message"]["content"] == "Bonjour"


def test_batches_are_listed_and_a_queued_one_cancels(api):
    batch = create(api, upload(api).get_json()["id"]).get_json()
    listing = api.client.get("/v1/batches", headers=api.headers).get_json()
    assert listing["object"] == "list" and listing["first_id"] == batch["id"]
    canceled = api.client.post(f"/v1/batches/{batch['id']}/cancel", headers=api.headers).get_json()
    assert canceled["status"] in ("cancelling", "cancelled")


def test_bad_paging_is_400(api):
    for query in ("limit=0", "limit=101", "after=nope", "order=asc", "purpose=other"):
        assert api.client.get(f"/v1/files?{query}", headers=api.headers).status_code == 400, query
    assert api.client.get("/v1/batches?after=nope", headers=api.headers).status_code == 400
