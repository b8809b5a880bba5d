"""The native asynchronous API: submit a job, read it, list them."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.routes.common import accepted, caller, generation_input, json_body, page_args, services
from core.errors import InvalidInput, WrongState
from core.jobs import JobStatus

bp = Blueprint("jobs", __name__)


@bp.post("/jobs")
def create_job():
    """Validate, store and enqueue a generation; 202 with the queued job."""
    owner = caller()
    params = generation_input(json_body())
    job = services().submit(params, owner, request.headers.get("Idempotency-Key"))
    return accepted(job.public_view(), f"/jobs/{job.id}")


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """Queued: canceled at once, never runs. Running: stops within a second, keeps its text. Finished: 409."""
    store = services().store
    job = store.get_for_owner(job_id, caller())
    if job.status == JobStatus.QUEUED and store.cancel_queued([job_id]):
        return jsonify(store.get_for_owner(job_id, job.owner).public_view())
    job = store.get_for_owner(job_id, job.owner)
    if job.status == JobStatus.RUNNING:
        store.request_cancel(job_id)
        return jsonify(job.public_view()), 202
    raise WrongState(f"job {job_id} is {job.status.value}: there is nothing to cancel")


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
