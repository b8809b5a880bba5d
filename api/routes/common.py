"""Helpers every route module uses: the services, the caller, the parsed body, ids, the 202 response."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request
from pydantic import BaseModel

from api.auth import owner_of
from api.services import Services
from core.batches.model import is_batch_id
from core.errors import (
    BatchNotFound,
    ErrorType,
    GenerationFailed,
    InvalidInput,
    JobNotFound,
    MalformedBody,
    UnsupportedMediaType,
    WaitTimedOut,
    WrongState,
)
from core.jobs.model import Job, JobStatus, is_job_id

# Only a JSON Content-Type makes a body JSON: forms and text/plain, which a browser may send from any site
# without asking, are refused rather than parsed.
JSON_MEDIA_TYPE = "application/json"


def accepted(body: BaseModel | dict, location: str) -> Response:
    """202 Accepted with the stored object and where to poll it."""
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = location
    return response


def services() -> Services:
    """The process's Services, set up by create_app."""
    return current_app.extensions["llm"]


def caller() -> str:
    """The owner id of the current request (raises Unauthorized)."""
    return owner_of(request, services().settings.api_key_values)


def is_json_media_type(mimetype: str) -> bool:
    """application/json, or a structured `+json` type such as application/merge-patch+json."""
    return mimetype == JSON_MEDIA_TYPE or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def json_body() -> Any:
    """The request's JSON body: a 415 unless its Content-Type is JSON, a 400 when it is not valid JSON."""
    if not is_json_media_type(request.mimetype):
        shown = request.mimetype or "no Content-Type"
        raise UnsupportedMediaType(f"the body must be sent as {JSON_MEDIA_TYPE}, not {shown}")
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # nesting deeper than the parser goes is not JSON we take
        body = None
    if body is None:
        raise MalformedBody("the request body must be valid JSON")
    return body


def checked_job_id(job_id: str) -> str:
    """The id from the URL; one not shaped like a job id is unknown without asking Redis (404)."""
    if not is_job_id(job_id):
        raise JobNotFound("no job with this id (a job id is 32 lowercase hex digits)")
    return job_id


def checked_batch_id(batch_id: str) -> str:
    """The id from the URL; one not shaped like a batch id is unknown without asking Redis (404)."""
    if not is_batch_id(batch_id):
        raise BatchNotFound("no batch with this id (a batch id is `batch_` and 32 lowercase hex digits)")
    return batch_id


def succeeded(job: Job, waited_s: float) -> Job:
    """A waited-for job if it succeeded; otherwise the typed error its outcome answers a waiting client with."""
    if job.status == JobStatus.SUCCEEDED:
        return job
    if job.status == JobStatus.FAILED:
        error = job.error
        if error is None:
            raise GenerationFailed("generation failed", job_id=job.id, error_type="failed")
        if error.type == ErrorType.INVALID_INPUT:  # the model refused this input: the client's to fix, not a 5xx
            raise InvalidInput(error.message)
        raise GenerationFailed(error.message, job_id=job.id, error_type=error.type)
    if job.status == JobStatus.CANCELED:
        raise WrongState(f"job {job.id} was canceled before it finished", job_id=job.id)
    raise WaitTimedOut(f"the job did not finish within {waited_s:g} s; poll /jobs/{job.id}", job_id=job.id)
