"""The OpenAI-compatible endpoints: chat and text completions, and the served model.

Every request is a job like any other (stored, counted against the key's limits, batched, listed in `GET /jobs`,
cancelable), submitted through the submit use case and waited for as `POST /v1/generate` waits. Errors on these
routes take OpenAI's shape (api/errors.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

from flask import Blueprint, Response, jsonify
from flask import request as flask_request

from api.client_connection import DepartureWatch, client_socket
from api.openapi import document
from api.routes.common import caller, json_body, services, succeeded
from api.schemas import ChatCompletion, ModelCard, ModelList, TextCompletion
from api.services import Services
from core.completion_stream import CompletionStream
from core.errors import JobNotFound, ModelNotFound, StoreUnavailable, WrongState
from core.jobs import Job
from core.openai_translation import (
    ChatCompletionRequest,
    CompletionRequest,
    Endpoint,
    OpenAIRequest,
    StreamChunks,
    created_at,
    parse_openai_request,
    response_body,
)
from core.settings import Settings
from core.token_stream import TokenStreams

log = logging.getLogger("llm.api")
bp = Blueprint("openai", __name__)

# A comment line on an idle stream (a job still queued), so proxies and clients don't time it out.
KEEP_ALIVE_S = 15.0

_COMPLETION_ERRORS = (400, 401, 409, 413, 415, 500, 503, 504)


@bp.post(Endpoint.CHAT_COMPLETIONS.value)
@document(
    tags=("openai",), json=ChatCompletionRequest, answers={200: ChatCompletion}, errors=_COMPLETION_ERRORS, openai=True
)
def chat_completions():
    """Chat completion (OpenAI-compatible)

    OpenAI's chat completion request and answer, served by a queued job (`id` is `chatcmpl-<job id>`). The served
    model answers whatever `model` is named. `stream: true` answers with server-sent `chat.completion.chunk`s
    ending with `data: [DONE]`; a client that disconnects cancels its job.
    """
    return _complete(Endpoint.CHAT_COMPLETIONS)


@bp.post(Endpoint.COMPLETIONS.value)
@document(
    tags=("openai",), json=CompletionRequest, answers={200: TextCompletion}, errors=_COMPLETION_ERRORS, openai=True
)
def completions():
    """Text completion (OpenAI-compatible)

    OpenAI's legacy completion request and answer (one prompt, 16 tokens unless `max_tokens` says otherwise),
    served by a queued job (`id` is `cmpl-<job id>`). `stream: true` answers with server-sent `text_completion`
    chunks ending with `data: [DONE]`.
    """
    return _complete(Endpoint.COMPLETIONS)


def _complete(endpoint: Endpoint):
    owner = caller()
    svc = services()
    request = parse_openai_request(endpoint, json_body())
    wait_s = svc.settings.sync_wait_seconds
    with ExitStack() as slot:
        slot.enter_context(svc.wait_slots.held(owner))  # taken before the job exists: a refused call creates none
        job = svc.submit_job(request.body, owner)
        if request.stream:
            # The stream holds the wait slot until it ends.
            return _streamed(svc, owner, job, request, slot.pop_all(), client_socket(flask_request.environ))
        job = svc.store.wait_until_terminal(job.id, wait_s)
    return jsonify(response_body(endpoint, succeeded(job, wait_s), svc.settings.served_model_name))


def _streamed(svc: Services, owner: str, job: Job, request: OpenAIRequest, slot: ExitStack, sock) -> Response:
    """The job's answer as server-sent events; a client that leaves before the end cancels the job."""
    chunks = StreamChunks(
        request.endpoint, job.id, created_at(job), svc.settings.served_model_name, request.include_usage
    )
    stream = CompletionStream(job.id, chunks, TokenStreams(svc.store.redis), svc.store, svc.settings.sync_wait_seconds)

    left = threading.Event()

    def on_leave() -> None:
        left.set()
        _cancel_quietly(svc, job.id, owner)

    def events() -> Iterator[bytes]:
        ended = False
        watch = DepartureWatch(sock, on_leave).start()
        try:
            with slot:
                last_write = time.monotonic()
                for chunk in stream:
                    if chunk is not None:
                        last_write = time.monotonic()
                        yield _event(chunk)
                    elif time.monotonic() - last_write >= KEEP_ALIVE_S:
                        last_write = time.monotonic()
                        yield b": keep-alive\n\n"
                ended = True
                yield b"data: [DONE]\n\n"
        finally:
            watch.stop()
            if not ended and not left.is_set():  # a write failed: the client left without the watch seeing it
                _cancel_quietly(svc, job.id, owner)

    response = Response(events(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must pass each event on as it comes
    return response


def _event(chunk: dict) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _cancel_quietly(svc: Services, job_id: str, owner: str) -> None:
    """Cancel the job of a client that left; one that has finished meanwhile stays as it is."""
    try:
        svc.cancel_job(job_id, owner)
        log.info("job %s canceled: its streaming client left", job_id)
    except (WrongState, JobNotFound):
        pass
    except StoreUnavailable as error:
        log.warning("job %s: its streaming client left, but the cancel failed: %s", job_id, error)


def _model_card(settings: Settings) -> dict:
    try:
        created = int(settings.model_dir.stat().st_mtime)
    except OSError:  # an API that can't read the model folder (its own container) still names the model
        created = 0
    return {"id": settings.served_model_name, "object": "model", "created": created, "owned_by": "llm-service"}


@bp.get("/v1/models")
@document(tags=("openai",), answers={200: ModelList}, errors=(401,), openai=True)
def list_models():
    """List models (OpenAI-compatible)

    The one served model (MODEL_NAME, or the model folder's name).
    """
    caller()
    return jsonify({"object": "list", "data": [_model_card(services().settings)]})


@bp.get("/v1/models/<path:model_id>")
@document(tags=("openai",), answers={200: ModelCard}, errors=(401, 404), openai=True)
def retrieve_model(model_id: str):
    """Retrieve a model (OpenAI-compatible)

    The served model by its name; any other name is 404.
    """
    caller()
    settings = services().settings
    if model_id != settings.served_model_name:
        raise ModelNotFound(
            f"the model `{model_id}` does not exist; this server serves `{settings.served_model_name}`", field="model"
        )
    return jsonify(_model_card(settings))
