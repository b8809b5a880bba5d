"""The synchronous `POST /v1/generate`: one request, one answer, served by a queued job that the request waits for."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.openapi import document
from api.routes.common import caller, json_body, services, succeeded
from api.schemas import GenerateResult
from core.jobs import GenerationInput

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

    Enqueue, wait up to SYNC_WAIT_SECONDS, and return the text; on timeout 504 names the job to poll.
    """
    owner = caller()
    svc = services()
    with svc.wait_slots.held(owner):  # taken before the job exists: a refused call creates none
        job = svc.submit_job(json_body(), owner)
        job = svc.store.wait_until_terminal(job.id, svc.settings.sync_wait_seconds)
    job = succeeded(job, svc.settings.sync_wait_seconds)
    output = job.output or {}
    return jsonify(
        {
            "id": job.id,
            # `generated_text` is what synchronous clients read; `text` matches the job object.
            "generated_text": output.get("text", ""),
            "text": output.get("text", ""),
            "finish_reason": output.get("finish_reason"),
            "usage": job.usage,
            "metrics": job.metrics,
            "resources": job.resources,
        }
    )
