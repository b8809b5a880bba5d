"""Batches: one handle for thousands of prompts (JSONL of custom_id + body, as the OpenAI Batch API has it)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.openapi import JSONL_MEDIA_TYPES, document
from api.queries import BatchQuery, PageQuery, ResultsQuery
from api.routes.common import accepted, caller, checked_batch_id, is_json_media_type, services
from core.batches.lines import read_batch_body
from core.batches.model import BatchJsonBody
from core.batches.view import BatchCancellation, BatchPage, BatchView
from core.errors import UnsupportedMediaType
from core.openai.batch_output import output_lines

bp = Blueprint("batches", __name__)
READ_CHUNK_BYTES = 64 * 1024


def _check_batch_media_type() -> None:
    # Only a declared JSON or JSONL body: a browser sends no Content-Type, text/plain or a form type cross-site
    # without asking first, so none of those may pass for a batch.
    mimetype = request.mimetype
    if not is_json_media_type(mimetype) and mimetype not in JSONL_MEDIA_TYPES:
        accepted_types = ", ".join(("application/json", *JSONL_MEDIA_TYPES))
        shown = mimetype or "no Content-Type"
        raise UnsupportedMediaType(f"a batch body must be sent as one of {accepted_types}, not {shown}")


@bp.post("/batches")
@document(
    tags=("batches",),
    json=BatchJsonBody,
    query=BatchQuery,
    answers={202: BatchView},
    errors=(401, 403, 413, 415, 422, 503),
)
def create_batch():
    """Submit a batch

    JSONL (application/jsonl or application/x-ndjson: one `{"custom_id", "body"}` per line), a JSON list of such
    lines, or `{"requests": [...], "webhook", "metadata"}`; up to 50,000 lines. Every line is validated first: any
    bad line refuses the whole batch (422 listing each), and nothing is enqueued.
    """
    owner = caller()
    svc = services()
    _check_batch_media_type()
    request.max_content_length = svc.settings.max_batch_body_bytes
    # Read as a stream: the line cap stops a huge body early, and the body is never held more than once.
    chunks = iter(lambda: request.stream.read(READ_CHUNK_BYTES), b"")
    body = read_batch_body(chunks, BatchQuery.read().webhook)
    batch = svc.submit_batch(body, owner, idempotency_key=request.headers.get("Idempotency-Key"))
    return accepted(svc.batches.view(batch), f"/batches/{batch.id}")


@bp.get("/batches/<batch_id>")
@document(tags=("batches",), answers={200: BatchView}, errors=(401, 404, 503))
def get_batch(batch_id: str):
    """Read a batch

    Status, counts by job status, times, tokens so far.
    """
    owner = caller()
    batches = services().batches
    return jsonify(batches.view(batches.get_for_owner(checked_batch_id(batch_id), owner)))


@bp.get("/batches")
@document(tags=("batches",), query=PageQuery, answers={200: BatchPage}, errors=(401, 422, 503))
def list_batches():
    """List your batches

    Newest first; pass `next_cursor` back as `cursor` for the next page.
    """
    query = PageQuery.read()
    batches = services().batches
    found, next_cursor = batches.list_for_owner(caller(), limit=query.limit, before_sequence=query.before_sequence)
    page = BatchPage(
        data=[batches.view(batch) for batch in found],
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )
    return jsonify(page)


@bp.get("/batches/<batch_id>/results")
@document(tags=("batches",), query=ResultsQuery, answers={200: None}, errors=(401, 404, 422, 503))
def batch_results(batch_id: str):
    """Read a batch's results

    JSONL, one line per input line in input order (`custom_id`, `job_id`, `status`, `output`, `error`, `usage`),
    streamed from Redis a chunk at a time. `?format=openai`: OpenAI batch output lines of the finished lines
    (`id`, `custom_id`, `response` with `status_code`, `request_id` and a `chat.completion` or `text_completion`
    `body`, `error`).
    """
    owner = caller()
    svc = services()
    result_format = ResultsQuery.read().format
    batch = svc.batches.get_for_owner(checked_batch_id(batch_id), owner)
    if result_format == "openai":
        lines = output_lines(svc.batches.jobs_in_order(batch.id), svc.settings.served_model_name)
    else:
        lines = svc.batches.result_lines(batch.id)
    return Response(lines, mimetype="application/jsonl")


@bp.post("/batches/<batch_id>/cancel")
@document(tags=("batches",), answers={200: BatchCancellation}, errors=(401, 404, 409, 503))
def cancel_batch(batch_id: str):
    """Cancel a batch

    Queued jobs are canceled and never run; running ones finish; a completed batch can't be canceled (409).
    """
    owner = caller()
    cancellation = services().cancel_batch(checked_batch_id(batch_id), owner)
    return jsonify(cancellation)
