"""The OpenAI batch workflow, as the official client drives it: files (`/v1/files`) and batches (`/v1/batches`)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.openapi import document
from api.queries import OpenAIFileQuery, OpenAIPageQuery
from api.routes.common import caller, json_body, services
from api.schemas import OpenAIFileUpload
from core.errors import InvalidInput, UnsupportedMediaType
from core.openai.batch_protocol import CreateOpenAIBatch, OpenAIBatchList, OpenAIBatchView
from core.openai.protocol import OpenAIFile, OpenAIFileDeleted, OpenAIFileList

bp = Blueprint("openai_batches", __name__)
READ_CHUNK_BYTES = 64 * 1024
# Room for the multipart framing and the `purpose` field around the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024


@bp.post("/v1/files")
@document(
    openai=True,
    tags=("openai batches",),
    form=OpenAIFileUpload,
    answers={200: OpenAIFile},
    errors=(400, 401, 413, 415, 429, 503),
)
def upload_file():
    """Upload a batch input file

    Multipart form data: `file` (JSONL, UTF-8, at most OPENAI_FILE_MAX_BYTES) and `purpose=batch`, as
    `client.files.create(file=..., purpose="batch")` sends it. Kept OPENAI_FILE_TTL_SECONDS.
    """
    owner = caller()
    svc = services()
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(f"a file is uploaded as multipart/form-data, not {request.mimetype or 'nothing'}")
    request.max_content_length = svc.settings.openai_file_max_bytes + FORM_OVERHEAD_BYTES
    upload = request.files.get("file")
    purpose = request.form.get("purpose")
    if upload is None:
        raise InvalidInput("file: required (a multipart form field holding the file)", field="file")
    if purpose is None:
        raise InvalidInput("purpose: required (`batch`)", field="purpose")
    chunks = iter(lambda: upload.stream.read(READ_CHUNK_BYTES), b"")
    stored = svc.files.upload(owner, upload.filename or "upload.jsonl", purpose, chunks)
    return jsonify(stored.public_view())


@bp.get("/v1/files")
@document(
    openai=True, tags=("openai batches",), query=OpenAIFileQuery, answers={200: OpenAIFileList}, errors=(400, 401, 503)
)
def list_files():
    """List your files

    Newest first; `after` is the last id of the previous page.
    """
    owner = caller()
    query = OpenAIFileQuery.read()
    found, has_more = services().files.list_for_owner(
        owner, limit=query.limit, after=query.after or None, purpose=query.purpose
    )
    return jsonify(OpenAIFileList.page([stored.public_view() for stored in found], has_more))


@bp.get("/v1/files/<file_id>")
@document(openai=True, tags=("openai batches",), answers={200: OpenAIFile}, errors=(401, 404, 503))
def get_file(file_id: str):
    """Read a file's record"""
    owner = caller()
    return jsonify(services().files.get_for_owner(file_id, owner).public_view())


@bp.delete("/v1/files/<file_id>")
@document(openai=True, tags=("openai batches",), answers={200: OpenAIFileDeleted}, errors=(401, 404, 503))
def delete_file(file_id: str):
    """Delete a file"""
    owner = caller()
    files = services().files
    files.delete(files.get_for_owner(file_id, owner))
    return jsonify(OpenAIFileDeleted(id=file_id, object="file", deleted=True))


@bp.get("/v1/files/<file_id>/content")
@document(openai=True, tags=("openai batches",), answers={200: None}, errors=(401, 404, 503))
def file_content(file_id: str):
    """Download a file

    An uploaded input, or a batch's output or error file (OpenAI batch output lines), streamed from Redis.
    """
    owner = caller()
    files = services().files
    stored = files.get_for_owner(file_id, owner)
    return Response((text.encode() for text in files.content(stored.id)), mimetype="application/jsonl")


@bp.post("/v1/batches")
@document(
    openai=True,
    tags=("openai batches",),
    json=CreateOpenAIBatch,
    answers={200: OpenAIBatchView},
    errors=(400, 401, 404, 413, 415, 429, 503),
)
def create_batch():
    """Create an OpenAI batch

    From an uploaded file, as `client.batches.create(input_file_id=..., endpoint=..., completion_window="24h")`
    sends it: every line is validated, then all are queued as one batch of this service (same id) at batch
    priority. A file with bad lines gives a `failed` batch whose `errors` name each line; nothing is queued.
    """
    owner = caller()
    svc = services()
    view = svc.openai_batches.create(json_body(), owner, idempotency_key=request.headers.get("Idempotency-Key"))
    return jsonify(view)


@bp.get("/v1/batches/<batch_id>")
@document(openai=True, tags=("openai batches",), answers={200: OpenAIBatchView}, errors=(401, 404, 503))
def get_batch(batch_id: str):
    """Read an OpenAI batch

    `request_counts` and the status follow its lines; once they have all finished, the first read writes the
    output and error files (`finalizing`) and the batch is `completed`, `cancelled` or `expired`.
    """
    owner = caller()
    return jsonify(services().openai_batches.get(batch_id, owner))


@bp.get("/v1/batches")
@document(
    openai=True, tags=("openai batches",), query=OpenAIPageQuery, answers={200: OpenAIBatchList}, errors=(400, 401, 503)
)
def list_batches():
    """List your OpenAI batches

    Newest first; `after` is the last id of the previous page.
    """
    owner = caller()
    query = OpenAIPageQuery.read()
    return jsonify(
        OpenAIBatchList.page(*services().openai_batches.list(owner, limit=query.limit, after=query.after or None))
    )


@bp.post("/v1/batches/<batch_id>/cancel")
@document(openai=True, tags=("openai batches",), answers={200: OpenAIBatchView}, errors=(401, 404, 409, 503))
def cancel_batch(batch_id: str):
    """Cancel an OpenAI batch

    Queued lines are canceled and never run; running ones finish (`cancelling`, then `cancelled` with files).
    """
    owner = caller()
    return jsonify(services().openai_batches.cancel(batch_id, owner))
