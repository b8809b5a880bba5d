"""The OpenAPI 3.1 document (`GET /openapi.json`), built by spectree from the models, and Swagger UI at `/docs`.

Routes are decorated with `document(...)`, which only describes them: requests are still validated by core (so
error answers keep their one shape from api/errors.py), never by spectree.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, jsonify
from flask_swagger_ui import get_swaggerui_blueprint
from pydantic import BaseModel
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree

from api.schemas import STREAM_EVENT_MODELS, ErrorBody
from core.batches.model import BATCH_ID_PATTERN, BatchRequestLine
from core.events.protocol import JOB_EVENT_KINDS
from core.jobs.model import JOB_ID_PATTERN
from core.openai.files import FILE_ID_PATTERN
from core.openai.protocol import ChatCompletionChunk, OpenAIErrorBody, TextCompletionChunk

OPENAPI_PATH = "/openapi.json"
# Routes that answer a request with `stream: true` as server-sent events.
STREAMING_PATHS = ("/v1/chat/completions", "/v1/completions")
DOCS_PATH = "/docs"
# Bodies of `POST /batches` with one request per line, besides JSON.
JSONL_MEDIA_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines")

ERROR_MEANINGS = {
    400: "The body is not JSON (or not UTF-8).",
    401: "API keys are configured and none, or a wrong one, was sent.",
    403: "This API key may not ask for this (`priority: high` without being in HIGH_PRIORITY_KEYS), or, with "
    "API_KEYS unset, a caller on another machine asked for metrics.",
    404: "No such job or batch for this API key (an id not shaped like one is never looked up), or no such route.",
    409: "The job or batch is in a state that refuses this (cancel of a finished one; a canceled sync job).",
    413: "The body is larger than MAX_BODY_BYTES (MAX_BATCH_BODY_BYTES for batches).",
    415: "The body's Content-Type is not one this endpoint reads.",
    422: "Invalid input, naming the field; nothing was stored or enqueued.",
    429: "This API key is over one of its own limits (request rate, waiting calls, queued jobs); see Retry-After.",
    500: "The generation failed on the worker (error.type says why; error.job_id names the job).",
    503: "The queue is full or Redis is unreachable; Retry-After says when to try again. If the request's job was "
    "stored, error.job_id and `Location` name it: it goes on, read it rather than submit it again.",
    504: "The synchronous wait ran out; the job goes on (error.job_id names it).",
}

OPENAI_ERROR_MEANINGS = {
    **ERROR_MEANINGS,
    400: "Invalid input, naming the field in `param` (a parameter this server can't honour, such as n > 1, is "
    "refused by name), or a body that is not JSON; nothing was stored or enqueued.",
    404: "No such model (only the served one is listed), no such file or batch for this API key, or no such route.",
    409: "The job was canceled before it finished, or the batch to cancel has finished.",
}

spec = SpecTree(
    "flask",
    title="Offline LLM service",
    version="1",
    description="Generation jobs on a GPU queue: submit, poll, cancel, batch, or wait synchronously. Errors are "
    'always `{"error": {"type", "message", "field"?}}`.',
    openapi_version="3.1.0",
    path=DOCS_PATH.strip("/"),
    annotations=False,
    # Only the routes described with document() are in the document.
    mode="strict",
    validation_error_model=ErrorBody,
    # One component per model name, shared by every route that uses it.
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer")),
        SecurityScheme(name="apiKey", data=SecuritySchemeData(type="apiKey", field_in="header", name="X-API-Key")),
    ],
    # Either header works; when API_KEYS is unset the API is open and both are ignored.
    security=[{"bearer": []}, {"apiKey": []}],
)


def document(
    *,
    tags: tuple[str, ...],
    answers: dict[int, type[BaseModel] | None],
    errors: tuple[int, ...],
    json: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    public: bool = False,
    openai: bool = False,
) -> Callable:
    """Describe a route in the OpenAPI document (answers, error statuses, body and query models); validates nothing.

    `openai` routes answer errors in OpenAI's shape, with a 400 for invalid input.
    """
    codes: dict[str, Any] = {f"HTTP_{status}": model for status, model in answers.items()}
    if not public:  # every route but the probes counts against the caller's request rate
        errors = (*errors, 429)
    error_model, meanings = (OpenAIErrorBody, OPENAI_ERROR_MEANINGS) if openai else (ErrorBody, ERROR_MEANINGS)
    codes.update({f"HTTP_{status}": (error_model, meanings[status]) for status in errors})
    describe = spec.validate(
        json=json,
        query=query,
        form=form,
        resp=Response(**codes),
        tags=tags,
        security={} if public else None,
        skip_validation=True,
        # spectree lists this status with its own validation error model unless the route already has it.
        validation_error_status=422 if 422 in errors else next(iter(answers)),
    )

    def decorate(view: Callable) -> Callable:
        described = describe(view)

        # The route runs the view itself, not spectree's wrapper (which would read a streamed answer into memory);
        # spectree finds the description through __wrapped__.
        @functools.wraps(view)
        def route(*args: Any, **kwargs: Any) -> Any:
            return view(*args, **kwargs)

        route.__wrapped__ = described  # type: ignore[attr-defined]
        return route

    return decorate


_ID_DESCRIPTIONS = {
    "job_id": "A job id: 32 lowercase hex digits.",
    "batch_id": "A batch id: `batch_` and 32 lowercase hex digits.",
    "file_id": "A file id: `file-` and 32 lowercase hex digits.",
}
_ID_PATTERNS = {
    "job_id": f"^{JOB_ID_PATTERN.pattern}$",
    "batch_id": f"^{BATCH_ID_PATTERN.pattern}$",
    "file_id": f"^{FILE_ID_PATTERN.pattern}$",
}


def _finish(generated: dict[str, Any]) -> dict[str, Any]:
    """What spectree can't say on its own: id shapes, JSONL batch bodies, the JSONL results answer and the
    event stream, the metrics' plain text."""
    document_ = copy.deepcopy(generated)
    for path_item in document_["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in _ID_PATTERNS:
                    parameter["schema"] = {"type": "string", "pattern": _ID_PATTERNS[parameter["name"]]}
                    parameter["description"] = _ID_DESCRIPTIONS[parameter["name"]]
    line_schema = {"$ref": f"#/components/schemas/{BatchRequestLine.__name__}"}
    batch_body = document_["paths"]["/batches"]["post"]["requestBody"]["content"]
    for media_type in JSONL_MEDIA_TYPES:
        # OpenAPI 3.1 has no schema for a sequence of lines: each line is one BatchRequestLine.
        batch_body[media_type] = {"schema": line_schema}
    for path in ("/batches/{batch_id}/results", "/v1/files/{file_id}/content"):
        results = document_["paths"][path]["get"]["responses"]["200"]
        results["content"] = {"application/jsonl": {"schema": {"type": "string"}}}
    metrics = document_["paths"]["/metrics"]["get"]["responses"]["200"]
    metrics["description"] = "The Prometheus text exposition format."
    metrics["content"] = {"text/plain": {"schema": {"type": "string"}}}
    _add_components(document_["components"]["schemas"], STREAM_EVENT_MODELS)
    events = document_["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["200"]
    events["content"] = {EVENT_STREAM: {"itemSchema": _job_event_schema()}}
    chunks = {"/v1/chat/completions": ChatCompletionChunk, "/v1/completions": TextCompletionChunk}
    for path in STREAMING_PATHS:
        # With `stream: true` the same 200 comes as server-sent events: OpenAI's chunks, then `data: [DONE]`.
        answer = document_["paths"][path]["post"]["responses"]["200"]
        answer["content"][EVENT_STREAM] = {"itemSchema": _chunk_event_schema(chunks[path])}
    return document_


# A stream's events are described one by one, as OpenAPI 3.2 does with `itemSchema` (its shape for an event:
# `data`, `event`, `id`, `retry`), rather than the whole stream as one string that no event matches.
EVENT_STREAM = "text/event-stream"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json_data(model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(model)}


def _event(data: dict[str, Any], name: str | None = None, *, has_id: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {"data": data}
    required = ["data"]
    if name is not None:
        properties["event"] = {"const": name}
        required.append("event")
    if has_id:
        properties["id"] = {"type": "string", "description": "Send it back as `Last-Event-ID` to resume after it."}
        required.append("id")
    return {"type": "object", "properties": properties, "required": required}


def _chunk_event_schema(chunk: type[BaseModel]) -> dict[str, Any]:
    return {
        "oneOf": [
            _event(_json_data(chunk)),
            _event(_json_data(OpenAIErrorBody)),
            _event({"const": "[DONE]", "description": "The last event."}),
        ]
    }


def _job_event_schema() -> dict[str, Any]:
    return {"oneOf": [_event(_json_data(kind.data), kind.name, has_id=kind.resumable) for kind in JOB_EVENT_KINDS]}


def _add_components(schemas: dict[str, Any], models: tuple[type[BaseModel], ...]) -> None:
    """Put models (and the models they use) that no route names directly among the document's components."""
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)


_finished: dict[str, Any] = {}


def openapi_document() -> dict[str, Any]:
    """The document, generated once from the app's routes (they are the same for every app this code builds)."""
    if not _finished:
        _finished.update(_finish(spec.spec))
    return _finished


bp = Blueprint("openapi", __name__)


@bp.get(OPENAPI_PATH)
def openapi_json():
    """The OpenAPI 3.1 document."""
    return jsonify(openapi_document())


def register_docs(app: Flask) -> None:
    """Serve the document and Swagger UI, whose scripts and styles come from the app itself (no CDN)."""
    app.register_blueprint(bp)
    ui = get_swaggerui_blueprint(
        DOCS_PATH,
        OPENAPI_PATH,
        # No validator badge: it would send the document to a public validator.
        config={"app_name": "Offline LLM service API", "validatorUrl": None},
        blueprint_name="openapi_ui",
    )
    app.register_blueprint(ui)
    # `/docs` itself, not only `/docs/`, shows the page.
    app.add_url_rule(DOCS_PATH, endpoint="openapi_ui_root", view_func=app.view_functions["openapi_ui.show"])
