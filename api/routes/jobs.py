"""The native asynchronous API: submit a job, read it, list them."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.routes.common import accepted, caller, json_body, page_args, services
from core.errors import InvalidInput
from core.jobs import JobStatus

bp = Blueprint("jobs", __name__)


@bp.post("/jobs")
def create_job():
    """Validate, store and enqueue a generation; 202 with the queued job."""
    owner = caller()
    job = services().submit_job(json_body(), owner, request.headers.get("Idempotency-Key"))
    return accepted(job.public_view(), f"/jobs/{job.id}")


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """Queued: canceled at once, never runs. Running: stops within a second, keeps its text. Finished: 409."""
    cancellation = services().cancel_job(job_id, caller())
    return jsonify(cancellation.job.public_view()), 202 if cancellation.stopping else 200


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    """The job object."""
    return jsonify(services().store.get_for_owner(job_id, caller()).public_view())


def _status_arg() -> JobStatus | None:
    status_arg = request.args.get("status")
    try:
        return JobStatus(status_arg) if status_arg else None
    except ValueError:
        allowed = ", ".join(s.value for s in JobStatus)
        raise InvalidInput(f"status: must be one of {allowed}", field="status") from None


@bp.get("/jobs")
def list_jobs():
    """The caller's jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
    status = _status_arg()
    limit, cursor = page_args()
    jobs, next_cursor = services().store.list_for_owner(caller(), status=status, limit=limit, before_sequence=cursor)
    return jsonify(
        {
            "data": [job.public_view() for job in jobs],
            "next_cursor": str(next_cursor) if next_cursor is not None else None,
        }
    )
