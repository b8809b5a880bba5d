"""The OpenAI-compatible endpoints: chat and text completions, and the served model.

Every request is a job like any other (stored, counted against the key's limits, batched, listed in `GET /jobs`,
cancelable), submitted through the submit use case and waited for as `POST /v1/generate` waits. Errors on these
routes take OpenAI's shape (api/errors.py).
"""

from __future__ import annotations

from contextlib import ExitStack

from flask import Blueprint, jsonify, request

from api.abandoned_jobs import cancels_when_caller_leaves, wait_for_caller_all
from api.client_connection import client_socket
from api.openai_streaming import streamed_answer
from api.openapi import document
from api.routes.common import caller, json_body, services, succeeded
from api.several_prompts import submit_each
from core.errors import ModelNotFound
from core.openai.answers import completion_answer
from core.openai.protocol import ChatCompletion, Endpoint, ModelCard, ModelList, TextCompletion
from core.openai.translation import ChatCompletionRequest, CompletionRequest, parse_openai_request
from core.settings import Settings

bp = Blueprint("openai", __name__)

_COMPLETION_ERRORS = (400, 401, 409, 413, 415, 500, 503, 504)


@bp.post(Endpoint.CHAT_COMPLETIONS.value)
@document(
    tags=("openai",), json=ChatCompletionRequest, answers={200: ChatCompletion}, errors=_COMPLETION_ERRORS, openai=True
)
def chat_completions():
    """Chat completion (OpenAI-compatible)

    OpenAI's chat completion request and answer, served by a queued job (`id` is `chatcmpl-<job id>`). The served
    model answers whatever `model` is named. `stream: true` answers with server-sent `chat.completion.chunk`s
    ending with `data: [DONE]`. A client that disconnects before the answer cancels its job, unless it sent an
    `Idempotency-Key`: then a retry with the same key and body is answered by the same job (another body is a 400).
    """
    return _complete(Endpoint.CHAT_COMPLETIONS)


@bp.post(Endpoint.COMPLETIONS.value)
@document(
    tags=("openai",), json=CompletionRequest, answers={200: TextCompletion}, errors=_COMPLETION_ERRORS, openai=True
)
def completions():
    """Text completion (OpenAI-compatible)

    OpenAI's legacy completion request and answer (16 tokens unless `max_tokens` says otherwise), served by a
    queued job (`id` is `cmpl-<job id>`); a list of prompts (up to 64) is a job per prompt, answered together
    (`id` names the first; prompt i's choice j has index i * n + j). `stream: true` answers with server-sent
    `text_completion` chunks (several prompts: one prompt's after another) ending with `data: [DONE]`.
    """
    return _complete(Endpoint.COMPLETIONS)


def _complete(endpoint: Endpoint):
    owner = caller()
    svc = services()
    openai_request = parse_openai_request(endpoint, json_body())
    key = request.headers.get("Idempotency-Key")
    cancels = cancels_when_caller_leaves(svc, key)
    sock = client_socket(request.environ) if cancels else None
    with ExitStack() as slot:
        slot.enter_context(svc.wait_slots.held(owner))  # taken before the job exists: a refused call creates none
        jobs = submit_each(svc, owner, openai_request.generations, key)
        if openai_request.stream:
            # The stream holds the wait slot until it ends.
            return streamed_answer(svc, owner, jobs, openai_request, slot.pop_all(), sock, cancels)
        jobs = wait_for_caller_all(svc, owner, jobs, sock)
    jobs = [succeeded(job, svc.settings.sync_wait_seconds) for job in jobs]
    return jsonify(completion_answer(endpoint, jobs, svc.settings.served_model_name))


def _model_card(settings: Settings) -> ModelCard:
    try:
        created = int(settings.model_dir.stat().st_mtime)
    except OSError:  # an API that can't read the model folder (its own container) still names the model
        created = 0
    return ModelCard(id=settings.served_model_name, object="model", created=created, owned_by="llm-service")


@bp.get("/v1/models")
@document(tags=("openai",), answers={200: ModelList}, errors=(401,), openai=True)
def list_models():
    """List models (OpenAI-compatible)

    The one served model (MODEL_NAME, or the model folder's name).
    """
    caller()
    return jsonify(ModelList(object="list", data=[_model_card(services().settings)]))


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
