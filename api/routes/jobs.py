"""The native asynchronous API: submit a job, read it, list them."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.openapi import document
from api.queries import JobPageQuery
from api.routes.common import accepted, caller, checked_job_id, json_body, services
from api.schemas import JobPage
from core.jobs.model import GenerationInput, Job

bp = Blueprint("jobs", __name__)


@bp.post("/jobs")
@document(
    tags=("jobs",),
    json=GenerationInput,
    answers={202: Job},
    errors=(400, 401, 403, 413, 415, 422, 503),
)
def create_job():
    """Submit a generation job

    Validate, store and enqueue; 202 with the queued job and `Location: /jobs/<id>`. An `Idempotency-Key`
    header makes a retry return the job the first call made (for 24 hours; another body with the same key is a 422).
    """
    owner = caller()
    job = services().submit_job(json_body(), owner, request.headers.get("Idempotency-Key"))
    return accepted(job.public_view(), f"/jobs/{job.id}")


@bp.post("/jobs/<job_id>/cancel")
@document(tags=("jobs",), answers={200: Job, 202: Job}, errors=(401, 404, 409, 503))
def cancel_job(job_id: str):
    """Cancel a job

    Queued: canceled at once, never runs (200). Running: stops within a second and keeps its text (202).
    Finished: 409.
    """
    owner = caller()
    cancellation = services().cancel_job(checked_job_id(job_id), owner)
    return jsonify(cancellation.job.public_view()), 202 if cancellation.stopping else 200


@bp.get("/jobs/<job_id>")
@document(tags=("jobs",), answers={200: Job}, errors=(401, 404, 503))
def get_job(job_id: str):
    """Read a job

    The job object: status, input, output, error, usage, metrics, resources, logs, webhook deliveries.
    """
    owner = caller()
    return jsonify(services().store.get_for_owner(checked_job_id(job_id), owner).public_view())


@bp.get("/jobs")
@document(tags=("jobs",), query=JobPageQuery, answers={200: JobPage}, errors=(401, 422, 503))
def list_jobs():
    """List your jobs

    Newest first; pass `next_cursor` back as `cursor` for the next page.
    """
    query = JobPageQuery.read()
    jobs, next_cursor = services().store.list_for_owner(
        caller(), status=query.status, limit=query.limit, before_sequence=query.before_sequence
    )
    return jsonify(JobPage(data=jobs, next_cursor=str(next_cursor) if next_cursor is not None else None))
