"""The synchronous `POST /v1/generate`: one request, one answer, served by a queued job that the request waits for."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.abandoned_jobs import cancels_when_caller_leaves, wait_for_caller
from api.client_connection import client_socket
from api.openapi import document
from api.routes.common import caller, json_body, services, succeeded
from api.schemas import GenerateResult
from core.jobs.model import GenerationInput

bp = Blueprint("generate", __name__)


@bp.post("/v1/generate")
@document(
    tags=("generate",),
    json=GenerationInput,
    answers={200: GenerateResult},
    errors=(400, 401, 403, 409, 413, 415, 422, 500, 503, 504),
)
def generate():
    """Generate and wait for the text

    Enqueue, wait up to SYNC_WAIT_SECONDS, and return the text. Once the job is stored every error names it
    (`error.job_id`, `Location: /jobs/<id>`): 504 when the wait ran out, 503 when Redis stayed away. An
    `Idempotency-Key` header makes a retry wait for the job the first call made (another body is a 422). A caller
    that leaves before the answer cancels its job, unless it sent an `Idempotency-Key`.
    """
    owner = caller()
    svc = services()
    key = request.headers.get("Idempotency-Key")
    with svc.wait_slots.held(owner):  # taken before the job exists: a refused call creates none
        job = svc.submit_job(json_body(), owner, key)
        sock = client_socket(request.environ) if cancels_when_caller_leaves(svc, key) else None
        job = wait_for_caller(svc, owner, job, sock)
    job = succeeded(job, svc.settings.sync_wait_seconds)
    return jsonify(GenerateResult.of(job))
