"""OpenAI batches: the OpenAI Batch API's objects over this service's own batches.

An OpenAI batch is a native batch (same id, its lines queued at batch priority like any batch) plus a record of
what OpenAI's object says beyond it: the input file, the endpoint, the window, the output files. Its status is
read from the native batch: `in_progress` while lines wait or run, `cancelling` once a cancel was asked,
`finalizing` while the output files are written (by the first API process that reads the finished batch), then
`completed`, `cancelled` or `expired`; `failed` when the input file was refused (nothing ran). Validation happens
within `POST /v1/batches`, so `validating` is never seen.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.batches.model import Batch, InvalidBatch, is_batch_id, new_batch_id, read_jsonl_body
from core.batches.store import BatchStore
from core.batches.submission import SubmitBatch
from core.errors import BatchNotFound, InvalidInput, WrongState
from core.jobs.model import check_metadata, parse_iso
from core.openai.batch_output import is_success, output_line
from core.openai.files import FileStore
from core.openai.translation import UNSUPPORTED_FIELD, Endpoint
from core.owners.index import owned_by, page_newest_first, shed_expired_index_entries, stage_index_expiry
from core.redis.errors import redis_boundary
from core.redis.keys import (
    OPENAI_BATCH_FINALIZING_KEY,
    OPENAI_BATCH_KEY,
    OPENAI_BATCH_OWNER_INDEX_KEY,
    OPENAI_BATCH_SEQUENCE_KEY,
)

COMPLETION_WINDOW_S = 24 * 3600
# Writing a 50,000-line batch's files takes seconds; a finalizer that died frees the batch for another after this.
FINALIZE_LOCK_S = 300
MIN_OUTPUT_TTL_S = 3600
MAX_OUTPUT_TTL_S = 30 * 24 * 3600


class OutputExpiresAfter(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    anchor: Literal["created_at"] = Field(description="Counted from the output file's creation.")
    seconds: int = Field(ge=MIN_OUTPUT_TTL_S, le=MAX_OUTPUT_TTL_S, description="How long output files are kept.")


class CreateOpenAIBatch(BaseModel):
    """The body of `POST /v1/batches`, as the official client sends it."""

    model_config = ConfigDict(strict=True, extra="forbid")

    input_file_id: str = Field(description="A file uploaded with `purpose=batch` (`POST /v1/files`).")
    endpoint: Endpoint = Field(strict=False, description="The endpoint every line of the file names in its `url`.")
    completion_window: Literal["24h"] = Field(description="Lines not run within it are expired.")
    metadata: dict[str, str] | None = Field(None, description="Your labels (16 pairs at most).")
    output_expires_after: OutputExpiresAfter | None = Field(
        None, description="How long the output and error files are kept (OPENAI_FILE_TTL_SECONDS by default)."
    )


class OpenAIBatch(BaseModel):
    """What is stored about an OpenAI batch besides its native batch; once finished, what the object then says."""

    model_config = ConfigDict(validate_assignment=True)

    id: str
    owner: str
    endpoint: Endpoint
    input_file_id: str
    completion_window: str
    created_at: int
    expires_at: int
    metadata: dict[str, str] = Field(default_factory=dict)
    output_ttl_s: int | None = None
    # Refused input: no native batch exists.
    failed_at: int | None = None
    errors: list[dict[str, Any]] | None = None
    # Its window ended with lines still queued: those were canceled.
    expired_at: int | None = None
    # Once the output files are written, the native batch's part of the object is kept here (it may expire first).
    final_status: Literal["completed", "cancelled", "expired"] | None = None
    finished_at: int | None = None
    finalizing_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    final: dict[str, Any] | None = None


def _unix(iso: str | None) -> int | None:
    return int(parse_iso(iso).timestamp()) if iso else None


def _native_part(native: dict[str, Any] | None) -> dict[str, Any]:
    """The fields OpenAI's object takes from the native batch view: times, request counts, token usage."""
    if native is None:
        return {"in_progress_at": None, "cancelling_at": None, "request_counts": None, "usage": None}
    counts = native["counts"]
    usage = native["usage"]
    return {
        "in_progress_at": _unix(native["created_at"]),
        "cancelling_at": _unix(native["cancel_requested_at"]),
        # Failed: every line that ended without an answer (it is in the error file), canceled ones included.
        "request_counts": {
            "total": native["total"],
            "completed": counts["succeeded"],
            "failed": counts["failed"] + counts["canceled"],
        },
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
        },
    }


def openai_batch_view(
    record: OpenAIBatch, native: dict[str, Any] | None, model_name: str, *, finalizing: bool = False
) -> dict[str, Any]:
    """OpenAI's batch object, from the record and (until it is finished) the native batch's view."""
    if record.failed_at is not None:
        status = "failed"
        part = _native_part(None) | {"request_counts": {"total": 0, "completed": 0, "failed": 0}}
    elif record.final_status is not None:
        status = record.final_status
        part = record.final or _native_part(None)
    else:
        part = _native_part(native)
        if finalizing or record.expired_at is not None:
            status = "finalizing"
        elif native is not None and native["cancel_requested_at"]:
            status = "cancelling"
        else:
            status = "in_progress"
    finished = record.finished_at
    return {
        "id": record.id,
        "object": "batch",
        "endpoint": record.endpoint.value,
        "model": model_name,
        "errors": {"object": "list", "data": record.errors} if record.errors else None,
        "input_file_id": record.input_file_id,
        "completion_window": record.completion_window,
        "status": status,
        "output_file_id": record.output_file_id,
        "error_file_id": record.error_file_id,
        "created_at": record.created_at,
        "in_progress_at": part["in_progress_at"],
        "expires_at": record.expires_at,
        "finalizing_at": record.finalizing_at,
        "completed_at": finished if status == "completed" else None,
        "failed_at": record.failed_at,
        "expired_at": record.expired_at if status == "expired" else None,
        "cancelling_at": part["cancelling_at"],
        "cancelled_at": finished if status == "cancelled" else None,
        "request_counts": part["request_counts"],
        "usage": part["usage"],
        "metadata": record.metadata,
    }


class OpenAIBatchStore:
    """The OpenAI batch records: kept while their batch runs, then as long as their output files."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    @redis_boundary()
    def add(self, record: OpenAIBatch) -> OpenAIBatch:
        """Store a new record and list it; one already stored under its id (a retried create) wins."""
        key = OPENAI_BATCH_KEY.format(batch_id=record.id)
        finished = record.failed_at is not None
        if not self.redis.set(key, record.model_dump_json(), nx=True, ex=self.ttl_s if finished else None):
            return self.get(record.id) or record
        index_key = OPENAI_BATCH_OWNER_INDEX_KEY.format(owner=record.owner)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(index_key, {record.id: self.redis.incr(OPENAI_BATCH_SEQUENCE_KEY)})
        if finished:
            stage_index_expiry(pipe, index_key, record.id, self.ttl_s)
        pipe.execute()
        return record

    @redis_boundary()
    def save(self, record: OpenAIBatch) -> None:
        """Write a changed record; a finished one starts its expiry clock (and its listing entry's) now."""
        key = OPENAI_BATCH_KEY.format(batch_id=record.id)
        pipe = self.redis.pipeline(transaction=True)
        if record.final_status is not None:
            pipe.set(key, record.model_dump_json(), ex=self.ttl_s)
            index_key = OPENAI_BATCH_OWNER_INDEX_KEY.format(owner=record.owner)
            stage_index_expiry(pipe, index_key, record.id, self.ttl_s)
        else:
            pipe.set(key, record.model_dump_json(), keepttl=True)
        pipe.execute()

    @redis_boundary()
    def get(self, batch_id: str) -> OpenAIBatch | None:
        raw = self.redis.get(OPENAI_BATCH_KEY.format(batch_id=batch_id))
        return OpenAIBatch.model_validate_json(raw) if raw else None

    def get_for_owner(self, batch_id: str, owner: str) -> OpenAIBatch:
        """The record if this owner may see it; another owner's is as unknown as a missing one."""
        found = self.get(batch_id) if is_batch_id(batch_id) else None
        return owned_by(found, owner, BatchNotFound(f"no batch with id {batch_id!r}"))

    @redis_boundary()
    def list_for_owner(self, owner: str, *, limit: int, after: str | None) -> tuple[list[OpenAIBatch], bool]:
        """Up to `limit` records, newest first, after the batch `after`; and whether more follow."""
        shed_expired_index_entries(self.redis)
        index_key = OPENAI_BATCH_OWNER_INDEX_KEY.format(owner=owner)
        before = None
        if after:
            score = self.redis.zscore(index_key, after)
            if score is None:
                raise InvalidInput(f"after: {after!r} is not one of your listed batches", field="after")
            before = int(score)
        found, next_cursor = page_newest_first(
            self.redis, index_key, self._load_many, limit=limit, before_sequence=before
        )
        return found, next_cursor is not None

    def _load_many(self, batch_ids: list[str]) -> list[OpenAIBatch | None]:
        raws = self.redis.mget([OPENAI_BATCH_KEY.format(batch_id=batch_id) for batch_id in batch_ids])
        return [OpenAIBatch.model_validate_json(raw) if raw else None for raw in raws]

    @redis_boundary()
    def try_finalizing(self, batch_id: str) -> bool:
        """Take the right to write this batch's output files (held FINALIZE_LOCK_S at most)."""
        return bool(
            self.redis.set(OPENAI_BATCH_FINALIZING_KEY.format(batch_id=batch_id), "1", nx=True, ex=FINALIZE_LOCK_S)
        )

    @redis_boundary()
    def done_finalizing(self, batch_id: str) -> None:
        self.redis.delete(OPENAI_BATCH_FINALIZING_KEY.format(batch_id=batch_id))


def parse_create_body(body: Any) -> CreateOpenAIBatch:
    """The `POST /v1/batches` body, or InvalidInput naming the first field at fault."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    try:
        request = CreateOpenAIBatch.model_validate(body)
    except ValidationError as error:
        served = " or ".join(e.value for e in Endpoint)
        raise InvalidInput.from_validation(
            error,
            unknown_field=UNSUPPORTED_FIELD,
            by_field={"endpoint": f"must be {served}: this server serves no other endpoint"},
        ) from None
    if request.metadata is not None:
        check_metadata(request.metadata)
    return request


class OpenAIBatches:
    """The OpenAI batch workflow's use cases: create from an uploaded file, read (settling what the native batch
    has become), list, cancel."""

    def __init__(
        self,
        records: OpenAIBatchStore,
        batches: BatchStore,
        files: FileStore,
        submit_batch: SubmitBatch,
        model_name: str,
    ) -> None:
        self.records = records
        self.batches = batches
        self.files = files
        self.submit_batch = submit_batch
        self.model_name = model_name

    def create(self, body: Any, owner: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Validate the input file's every line and queue them as one native batch; a refused file makes a
        `failed` batch listing each bad line (as OpenAI reports it), with nothing queued."""
        request = parse_create_body(body)
        source = self.files.get_for_owner(request.input_file_id, owner)
        if source.purpose != "batch":
            raise InvalidInput("input_file_id: the file was not uploaded with purpose `batch`", field="input_file_id")
        metadata = request.metadata or {}
        now = int(time.time())
        record = OpenAIBatch(
            id=new_batch_id(),
            owner=owner,
            endpoint=request.endpoint,
            input_file_id=source.id,
            completion_window=request.completion_window,
            created_at=now,
            expires_at=now + COMPLETION_WINDOW_S,
            metadata=metadata,
            output_ttl_s=request.output_expires_after.seconds if request.output_expires_after else None,
        )
        chunks = (text.encode() for text in self.files.content(source.id))
        try:
            native = self.submit_batch(
                read_jsonl_body(chunks, metadata, request.endpoint), owner, idempotency_key=idempotency_key
            )
        except InvalidBatch as bad:
            record.failed_at = now
            record.errors = [
                {"code": "invalid_request", "line": line["line"], "message": line["message"], "param": None}
                for line in bad.line_errors
            ]
        except InvalidInput as bad:  # the file as a whole: empty, or past the line cap
            record.failed_at = now
            record.errors = [{"code": "invalid_file", "line": None, "message": bad.message, "param": None}]
        else:
            record.id = native.id
            record.created_at = _unix(native.created_at) or now
        stored = self.records.add(record)
        return self.view(stored)

    def get(self, batch_id: str, owner: str) -> dict[str, Any]:
        """The caller's batch as OpenAI's object."""
        return self.view(self.records.get_for_owner(batch_id, owner))

    def list(self, owner: str, *, limit: int, after: str | None) -> tuple[list[dict[str, Any]], bool]:
        """A page of the caller's batches as OpenAI's objects, newest first; and whether more follow."""
        found, has_more = self.records.list_for_owner(owner, limit=limit, after=after)
        return [self.view(record) for record in found], has_more

    def cancel(self, batch_id: str, owner: str) -> dict[str, Any]:
        """Cancel the native batch (queued lines never run; running ones finish); a finished batch can't be."""
        record = self.records.get_for_owner(batch_id, owner)
        native = self.batches.get(record.id)
        finished = native is None or self.batches.view(native)["completed_at"] is not None
        if record.failed_at is not None or record.final_status is not None or finished:
            state = "failed" if record.failed_at is not None else record.final_status or "finished"
            raise WrongState(f"batch {batch_id} is {state}: there is nothing to cancel")
        self.batches.cancel(native)
        return self.view(record)

    def view(self, record: OpenAIBatch) -> dict[str, Any]:
        """OpenAI's object for the record, first settling it: expiring a batch past its window, and writing the
        output files of one that has finished."""
        if record.failed_at is not None or record.final_status is not None:
            return openai_batch_view(record, None, self.model_name)
        native = self.batches.get(record.id)
        if native is None:  # its native batch expired before anyone read it finished
            record.final_status, record.finished_at = "expired", int(time.time())
            self.records.save(record)
            return openai_batch_view(record, None, self.model_name)
        native_view = self.batches.view(native)
        if native_view["completed_at"] is None and record.expired_at is None and time.time() >= record.expires_at:
            record.expired_at = int(time.time())
            self.records.save(record)
            self.batches.cancel(native)
            native_view = self.batches.view(native)
        if native_view["completed_at"] is None:
            return openai_batch_view(record, native_view, self.model_name)
        if not self.records.try_finalizing(record.id):
            return openai_batch_view(record, native_view, self.model_name, finalizing=True)
        try:
            current = self.records.get(record.id) or record
            if current.final_status is None:  # nobody finalized it between our reads
                self._finalize(current, native, native_view)
            return openai_batch_view(current, None, self.model_name)
        finally:
            self.records.done_finalizing(record.id)

    def _finalize(self, record: OpenAIBatch, native: Batch, native_view: dict[str, Any]) -> None:
        """Write the output file (answers) and the error file (failures), in one pass over the batch's lines."""
        record.finalizing_at = int(time.time())
        expired = record.expired_at is not None
        output = self.files.writer(record.owner, f"{record.id}_output.jsonl", "batch_output", record.output_ttl_s)
        errors = self.files.writer(record.owner, f"{record.id}_error.jsonl", "batch_output", record.output_ttl_s)
        answered = failed = 0
        for job_id, job in self.batches.jobs_in_order(native.id):
            line = output_line(job_id, job, self.model_name, batch_expired=expired)
            if line is None:  # cannot happen once the native batch completed; never write a half answer
                continue
            text = json.dumps(line, ensure_ascii=False) + "\n"
            if is_success(line):
                output.add(text)
                answered += 1
            else:
                errors.add(text)
                failed += 1
        # As OpenAI does: a file only when it has lines.
        record.output_file_id = output.close().id if answered else None
        record.error_file_id = errors.close().id if failed else None
        record.final = _native_part(native_view)
        record.finished_at = _unix(native_view["completed_at"]) or int(time.time())
        if expired:
            record.final_status = "expired"
        elif native_view["cancel_requested_at"] is not None:
            record.final_status = "cancelled"
        else:
            record.final_status = "completed"
        self.records.save(record)
