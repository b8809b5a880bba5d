"""Batches: one handle for thousands of prompts (JSONL of custom_id + body, as the OpenAI Batch API has it)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.routes.common import accepted, caller, page_args, services
from core.batches import read_batch_body

bp = Blueprint("batches", __name__)
READ_CHUNK_BYTES = 64 * 1024


@bp.post("/batches")
def create_batch():
    """Validate every line first; any bad line refuses the whole batch (422 listing them), nothing enqueued."""
    owner = caller()
    svc = services()
    request.max_content_length = svc.settings.max_batch_body_bytes
    # Read as a stream: the line cap stops a huge body early, and the body is never held more than once.
    chunks = iter(lambda: request.stream.read(READ_CHUNK_BYTES), b"")
    body = read_batch_body(chunks, request.args.get("webhook"))
    batch = svc.submit_batch(body, owner, idempotency_key=request.headers.get("Idempotency-Key"))
    return accepted(svc.batches.view(batch), f"/batches/{batch.id}")


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    """Status, counts by job status, times, tokens so far."""
    batches = services().batches
    return jsonify(batches.view(batches.get_for_owner(batch_id, caller())))


@bp.get("/batches")
def list_batches():
    """The caller's batches, newest first."""
    limit, cursor = page_args()
    batches = services().batches
    found, next_cursor = batches.list_for_owner(caller(), limit=limit, before_sequence=cursor)
    return jsonify(
        {
            "data": [batches.view(batch) for batch in found],
            "next_cursor": str(next_cursor) if next_cursor is not None else None,
        }
    )


@bp.get("/batches/<batch_id>/results")
def batch_results(batch_id: str):
    """JSONL, one line per input line in input order, streamed from Redis a chunk at a time."""
    batches = services().batches
    batch = batches.get_for_owner(batch_id, caller())
    return Response(batches.result_lines(batch.id), mimetype="application/jsonl")


@bp.post("/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str):
    """Queued jobs are canceled and never run; running ones finish; a completed batch can't be canceled (409)."""
    cancellation = services().cancel_batch(batch_id, caller())
    return jsonify(cancellation.view | {"canceled_now": cancellation.canceled_now})
