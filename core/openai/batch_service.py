"""OpenAI batches' use cases: the OpenAI Batch API's objects over this service's own batches.

An OpenAI batch is a native batch (same id, its lines queued at batch priority like any batch) plus a record of
what OpenAI's object says beyond it: the input file, the endpoint, the window, the output files. Its status is
read from the native batch: `in_progress` while lines wait or run, `cancelling` once a cancel was asked,
`finalizing` while the output files are written (by the first API process that reads the finished batch), then
`completed`, `cancelled` or `expired`; `failed` when the input file was refused (nothing ran). Validation happens
within `POST /v1/batches`, so `validating` is never seen.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from core.batches.lines import InvalidBatch, read_jsonl_body
from core.batches.model import Batch, new_batch_id
from core.batches.store import BatchStore
from core.batches.submission import SubmitBatch
from core.batches.view import BatchView
from core.errors import UNSUPPORTED_FIELD, InvalidInput, WrongState, invalid_input_from
from core.jobs.model import check_metadata, parse_iso
from core.openai.batch_output import output_line
from core.openai.batch_protocol import (
    CreateOpenAIBatch,
    OpenAIBatchErrors,
    OpenAIBatchLineError,
    OpenAIBatchStatus,
    OpenAIBatchUsage,
    OpenAIBatchView,
    OpenAIInputTokensDetails,
    OpenAIOutputTokensDetails,
    OpenAIRequestCounts,
)
from core.openai.batch_records import NativeProgress, OpenAIBatch
from core.openai.batch_store import OpenAIBatchStore
from core.openai.files import FileStore
from core.openai.protocol import Endpoint

COMPLETION_WINDOW_S = 24 * 3600
_SERVED = " or ".join(e.value for e in Endpoint)
_ENDPOINT_MESSAGE = {"endpoint": f"must be {_SERVED}: this server serves no other endpoint"}
_NO_PROGRESS = NativeProgress(in_progress_at=None, cancelling_at=None, request_counts=None, usage=None)


def _unix(iso: str | None) -> int | None:
    return int(parse_iso(iso).timestamp()) if iso else None


def _native_progress(native: BatchView) -> NativeProgress:
    """The fields OpenAI's object takes from the native batch view: times, request counts, token usage."""
    counts = native.counts
    usage = native.usage
    return NativeProgress(
        in_progress_at=_unix(native.created_at),
        cancelling_at=_unix(native.cancel_requested_at),
        # Failed: every line that ended without an answer (it is in the error file), canceled ones included.
        request_counts=OpenAIRequestCounts(
            total=native.total, completed=counts.succeeded, failed=counts.failed + counts.canceled
        ),
        usage=OpenAIBatchUsage(
            input_tokens=usage.prompt_tokens,
            input_tokens_details=OpenAIInputTokensDetails(cached_tokens=0),
            output_tokens=usage.completion_tokens,
            output_tokens_details=OpenAIOutputTokensDetails(reasoning_tokens=0),
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
        ),
    )


def openai_batch_view(
    record: OpenAIBatch, native: BatchView | None, model_name: str, *, finalizing: bool = False
) -> OpenAIBatchView:
    """OpenAI's batch object, from the record and (until it is finished) the native batch's view."""
    status: OpenAIBatchStatus
    if record.failed_at is not None:
        status = "failed"
        part = _NO_PROGRESS.model_copy(update={"request_counts": OpenAIRequestCounts(total=0, completed=0, failed=0)})
    elif record.final_status is not None:
        status = record.final_status
        part = record.final or _NO_PROGRESS
    else:
        part = _native_progress(native) if native is not None else _NO_PROGRESS
        if finalizing or record.expired_at is not None:
            status = "finalizing"
        elif native is not None and native.cancel_requested_at:
            status = "cancelling"
        else:
            status = "in_progress"
    finished = record.finished_at
    return OpenAIBatchView(
        id=record.id,
        object="batch",
        endpoint=record.endpoint.value,
        model=model_name,
        errors=OpenAIBatchErrors(object="list", data=record.errors) if record.errors else None,
        input_file_id=record.input_file_id,
        completion_window=record.completion_window,
        status=status,
        output_file_id=record.output_file_id,
        error_file_id=record.error_file_id,
        created_at=record.created_at,
        in_progress_at=part.in_progress_at,
        expires_at=record.expires_at,
        finalizing_at=record.finalizing_at,
        completed_at=finished if status == "completed" else None,
        failed_at=record.failed_at,
        expired_at=record.expired_at if status == "expired" else None,
        cancelling_at=part.cancelling_at,
        cancelled_at=finished if status == "cancelled" else None,
        request_counts=part.request_counts,
        usage=part.usage,
        metadata=record.metadata,
    )


def parse_create_body(body: Any) -> CreateOpenAIBatch:
    """The `POST /v1/batches` body, or InvalidInput naming the first field at fault."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    try:
        request = CreateOpenAIBatch.model_validate(body)
    except ValidationError as error:
        raise invalid_input_from(error, type_messages=UNSUPPORTED_FIELD, field_messages=_ENDPOINT_MESSAGE) from None
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

    def create(self, body: Any, owner: str, *, idempotency_key: str | None = None) -> OpenAIBatchView:
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
                OpenAIBatchLineError(code="invalid_request", line=line["line"], message=line["message"], param=None)
                for line in bad.line_errors
            ]
        except InvalidInput as bad:  # the file as a whole: empty, or past the line cap
            record.failed_at = now
            record.errors = [OpenAIBatchLineError(code="invalid_file", line=None, message=bad.message, param=None)]
        else:
            record.id = native.id
            record.created_at = _unix(native.created_at) or now
        stored = self.records.add(record)
        return self.view(stored)

    def get(self, batch_id: str, owner: str) -> OpenAIBatchView:
        """The caller's batch as OpenAI's object."""
        return self.view(self.records.get_for_owner(batch_id, owner))

    def list(self, owner: str, *, limit: int, after: str | None) -> tuple[list[OpenAIBatchView], bool]:
        """A page of the caller's batches as OpenAI's objects, newest first; and whether more follow."""
        found, has_more = self.records.list_for_owner(owner, limit=limit, after=after)
        return [self.view(record) for record in found], has_more

    def cancel(self, batch_id: str, owner: str) -> OpenAIBatchView:
        """Cancel the native batch (queued lines never run; running ones finish); a finished batch can't be."""
        record = self.records.get_for_owner(batch_id, owner)
        native = self.batches.get(record.id)
        finished = native is None or self.batches.view(native).completed_at is not None
        if record.failed_at is not None or record.final_status is not None or finished:
            state = "failed" if record.failed_at is not None else record.final_status or "finished"
            raise WrongState(f"batch {batch_id} is {state}: there is nothing to cancel")
        self.batches.cancel(native)
        return self.view(record)

    def view(self, record: OpenAIBatch) -> OpenAIBatchView:
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
        if native_view.completed_at is None and record.expired_at is None and time.time() >= record.expires_at:
            record.expired_at = int(time.time())
            self.records.save(record)
            self.batches.cancel(native)
            native_view = self.batches.view(native)
        if native_view.completed_at is None:
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

    def _finalize(self, record: OpenAIBatch, native: Batch, native_view: BatchView) -> None:
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
            text = line.jsonl()
            if line.is_success:
                output.add(text)
                answered += 1
            else:
                errors.add(text)
                failed += 1
        # As OpenAI does: a file only when it has lines.
        record.output_file_id = output.close().id if answered else None
        record.error_file_id = errors.close().id if failed else None
        record.final = _native_progress(native_view)
        record.finished_at = _unix(native_view.completed_at) or int(time.time())
        if expired:
            record.final_status = "expired"
        elif native_view.cancel_requested_at is not None:
            record.final_status = "cancelled"
        else:
            record.final_status = "completed"
        self.records.save(record)
