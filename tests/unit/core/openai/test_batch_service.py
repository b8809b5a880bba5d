"""OpenAI batches over native batches, in-process: a create from an uploaded file queues its lines or fails listing
the bad ones, the object's status follows the native batch (in progress, cancelling, finalizing, completed,
cancelled, expired), and a finished batch's answers and failures are written once to its output and error files."""

from __future__ import annotations

import json
import time

import pytest

from core.batches.submission import SubmitBatch
from core.errors import FileNotFound, InvalidInput, WrongState
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.model import JobStatus
from core.openai.batch_records import OpenAIBatch
from core.openai.batch_service import COMPLETION_WINDOW_S, OpenAIBatches, openai_batch_view, parse_create_body
from core.openai.batch_store import OpenAIBatchStore
from core.openai.files import FileStore
from core.openai.protocol import Endpoint
from core.redis.keys import BATCH_KEY

CHAT = "/v1/chat/completions"
USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


@pytest.fixture
def files(client) -> FileStore:
    return FileStore(client, ttl_s=3600, max_bytes=1_000_000)


@pytest.fixture
def records(client) -> OpenAIBatchStore:
    return OpenAIBatchStore(client, ttl_s=3600)


@pytest.fixture
def service(settings, batches, queue, files, records) -> OpenAIBatches:
    submit = SubmitBatch(settings, batches, queue, IdempotencyKeys(batches.redis))
    return OpenAIBatches(records, batches, files, submit, "demo")


def line(custom_id: str, text: str = "hi", url: str = CHAT) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"messages": [{"role": "user", "content": text}]},
    }


def uploaded(files: FileStore, lines: list, owner: str = "owner-a") -> str:
    text = "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in lines)
    return files.upload(owner, "in.jsonl", "batch", [text.encode()]).id


def create(service: OpenAIBatches, files: FileStore, lines: list, **fields):
    body = {"input_file_id": uploaded(files, lines), "endpoint": CHAT, "completion_window": "24h"} | fields
    return service.create(body, "owner-a")


def line_jobs(batches, batch_id: str) -> list[str]:
    return [job_id for job_id, _ in batches.jobs_in_order(batch_id)]


def run(store, job_id: str, status: JobStatus = JobStatus.SUCCEEDED, **fields) -> None:
    def record(job) -> None:
        for name, value in fields.items():
            setattr(job, name, value)

    store.transition(job_id, JobStatus.RUNNING)
    if status is not JobStatus.RUNNING:
        store.transition(job_id, status, record)


def file_lines(files: FileStore, file_id: str) -> list[dict]:
    return [json.loads(text) for text in "".join(files.content(file_id)).splitlines()]


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"endpoint": "/v1/embeddings"}, "endpoint", f"must be {CHAT} or /v1/completions"),
        ({"completion_window": "1h"}, "completion_window", "24h"),
        ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata", "16"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, "output_expires_after.seconds", "3600"),
        ({"made_up": 1}, "made_up", "not supported"),
    ],
)
def test_a_create_body_is_refused_naming_its_field(body, field, says):
    good = {"input_file_id": "file-x", "endpoint": CHAT, "completion_window": "24h"}
    with pytest.raises(InvalidInput) as refused:
        parse_create_body(good | body)
    assert refused.value.field == field and says in refused.value.message, refused.value.message
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_create_body([good])


def test_a_valid_file_queues_its_lines_as_one_native_batch(service, files, queue, batches):
    view = create(service, files, [line("a"), line("b")], metadata={"team": "x"})
    assert view.status == "in_progress" and view.object == "batch" and view.model == "demo"
    assert view.endpoint == CHAT and view.metadata == {"team": "x"} and view.errors is None
    assert view.expires_at == view.created_at + COMPLETION_WINDOW_S and view.in_progress_at == view.created_at
    assert view.request_counts.model_dump() == {"total": 2, "completed": 0, "failed": 0}
    assert batches.get(view.id) is not None and [job_id for job_id, _ in queue.published] == line_jobs(batches, view.id)


def test_a_file_with_bad_lines_makes_a_failed_batch_listing_them_with_nothing_queued(service, files, queue):
    view = create(service, files, [line("a"), "not json", line("c", url="/v1/embeddings")])
    body = view.model_dump(mode="json")
    assert body["status"] == "failed" and body["failed_at"] is not None and queue.published == []
    assert [(error["code"], error["line"]) for error in body["errors"]["data"]] == [
        ("invalid_request", 2),
        ("invalid_request", 3),
    ]
    assert body["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert service.get(view.id, "owner-a") == view


def test_an_empty_file_makes_a_failed_batch_for_the_whole_file(service, files):
    view = create(service, files, [])
    assert view.status == "failed" and [error.code for error in view.errors.data] == ["invalid_file"]
    assert view.errors.data[0].line is None


def test_only_the_owners_batch_input_files_are_taken(service, files):
    writer = files.writer("owner-a", "out.jsonl", "batch_output")
    writer.add(json.dumps(line("a")) + "\n")
    output = writer.close()
    with pytest.raises(InvalidInput) as refused:
        service.create({"input_file_id": output.id, "endpoint": CHAT, "completion_window": "24h"}, "owner-a")
    assert refused.value.field == "input_file_id"
    others = uploaded(files, [line("a")], owner="owner-b")
    with pytest.raises(FileNotFound):
        service.create({"input_file_id": others, "endpoint": CHAT, "completion_window": "24h"}, "owner-a")


def test_a_finished_batch_writes_its_answers_and_failures_to_two_files_once(service, files, batches, store):
    view = create(service, files, [line("a"), line("b")])
    first, second = line_jobs(batches, view.id)
    run(store, first, output={"text": "Hello", "finish_reason": "stop"}, usage=USAGE)
    run(store, second, JobStatus.FAILED, error={"type": "invalid_input", "message": "too long"})
    done = service.get(view.id, "owner-a")
    assert done.status == "completed" and done.completed_at is not None and done.finalizing_at is not None
    assert done.request_counts.model_dump() == {"total": 2, "completed": 1, "failed": 1}
    assert done.usage.input_tokens == 3 and done.usage.output_tokens == 4 and done.usage.total_tokens == 7
    [answer] = file_lines(files, done.output_file_id)
    assert answer["custom_id"] == "a" and answer["response"]["body"]["choices"][0]["message"]["content"] == "Hello"
    [failure] = file_lines(files, done.error_file_id)
    assert failure["custom_id"] == "b" and failure["response"]["status_code"] == 400
    assert files.get(done.output_file_id).purpose == "batch_output"
    assert service.get(view.id, "owner-a") == done  # read from the record now: no second pair of files


def test_while_another_process_writes_the_files_the_batch_is_finalizing(service, files, batches, store, records):
    view = create(service, files, [line("a")])
    [job_id] = line_jobs(batches, view.id)
    run(store, job_id, output={"text": "x", "finish_reason": "stop"}, usage=USAGE)
    assert records.try_finalizing(view.id)
    assert service.get(view.id, "owner-a").status == "finalizing"
    records.done_finalizing(view.id)
    assert service.get(view.id, "owner-a").status == "completed"


def test_a_cancel_leaves_a_running_line_to_finish_then_the_batch_is_cancelled(service, files, batches, store):
    view = create(service, files, [line("a"), line("b")])
    first, _ = line_jobs(batches, view.id)
    run(store, first, JobStatus.RUNNING)
    cancelling = service.cancel(view.id, "owner-a")
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    store.transition(
        first, JobStatus.SUCCEEDED, lambda job: setattr(job, "output", {"text": "x", "finish_reason": "stop"})
    )
    cancelled = service.get(view.id, "owner-a")
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None and cancelled.completed_at is None
    assert cancelled.request_counts.model_dump() == {"total": 2, "completed": 1, "failed": 1}
    assert [line["error"]["code"] for line in file_lines(files, cancelled.error_file_id)] == ["batch_cancelled"]
    with pytest.raises(WrongState, match="cancelled"):
        service.cancel(view.id, "owner-a")


def test_a_failed_batch_cannot_be_cancelled(service, files):
    view = create(service, files, ["not json"])
    with pytest.raises(WrongState, match="failed"):
        service.cancel(view.id, "owner-a")


def test_a_batch_past_its_window_cancels_its_queued_lines_and_expires(service, files, records):
    view = create(service, files, [line("a")])
    record = records.get(view.id)
    record.expires_at = int(time.time()) - 1
    records.save(record)
    expired = service.get(view.id, "owner-a")
    assert expired.status == "expired" and expired.expired_at is not None and expired.output_file_id is None
    assert [line["error"]["code"] for line in file_lines(files, expired.error_file_id)] == ["batch_expired"]


def test_a_batch_whose_native_batch_expired_unread_is_expired(service, files, client):
    view = create(service, files, [line("a")])
    client.delete(BATCH_KEY.format(batch_id=view.id))
    gone = service.get(view.id, "owner-a")
    assert gone.status == "expired" and gone.request_counts is None and gone.expired_at is None


def test_an_owners_batches_are_listed_newest_first(service, files):
    made = [create(service, files, [line("a")]).id for _ in range(3)]
    page, more = service.list("owner-a", limit=2, after=None)
    assert [view.id for view in page] == [made[2], made[1]] and more
    assert service.list("owner-b", limit=2, after=None) == ([], False)


def test_the_object_of_a_record_without_its_native_batch():
    record = OpenAIBatch(
        id="batch_x",
        owner="o",
        endpoint=Endpoint.COMPLETIONS,
        input_file_id="file-x",
        completion_window="24h",
        created_at=10,
        expires_at=20,
    )
    view = openai_batch_view(record, None, "demo").model_dump(mode="json")
    assert view["status"] == "in_progress" and view["endpoint"] == "/v1/completions"
    assert view["request_counts"] is None and view["usage"] is None and view["metadata"] == {}
    assert openai_batch_view(record, None, "demo", finalizing=True).status == "finalizing"
