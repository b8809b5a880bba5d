"""OpenAI's answer shapes as this service serves them: completions, their streamed chunks, models, files, errors.

Each answer is built as one of these models and sent as its JSON; the OpenAPI document shows the same models. The
chunks are built with only the fields they carry and sent with `exclude_unset`: `usage` and a delta's `role` and
`content` are absent, not null, where they are not set. Request bodies are in core/openai/translation.py.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from core.jobs.records import JobUsage

FinishReason = Literal["stop", "length"]


class Endpoint(StrEnum):
    """The OpenAI endpoints this service serves, by their URL (as an OpenAI batch line names them)."""

    CHAT_COMPLETIONS = "/v1/chat/completions"
    COMPLETIONS = "/v1/completions"

    @property
    def object_name(self) -> str:
        """The `object` of the answer."""
        return "chat.completion" if self is Endpoint.CHAT_COMPLETIONS else "text_completion"

    @property
    def chunk_object_name(self) -> str:
        """The `object` of each streamed chunk."""
        return "chat.completion.chunk" if self is Endpoint.CHAT_COMPLETIONS else "text_completion"

    @property
    def id_prefix(self) -> str:
        return "chatcmpl-" if self is Endpoint.CHAT_COMPLETIONS else "cmpl-"


class TopLogprob(BaseModel):
    """One of the most likely tokens at a position (OpenAI's chat `top_logprobs` item)."""

    token: str
    logprob: float
    bytes: list[int] | None = Field(description="The token's text as UTF-8 bytes.")


class ChatTokenLogprob(TopLogprob):
    """One token of the answer with its log probability and the most likely tokens at its position."""

    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    """A chat choice's `logprobs` (with `logprobs: true`): one item per generated token."""

    content: list[ChatTokenLogprob] | None
    refusal: None = None


class TextLogprobs(BaseModel):
    """A text choice's `logprobs` (with `logprobs: k`), OpenAI's legacy shape: parallel lists, one item per token
    (the prompt's too with `echo`, whose first token has null logprob and alternatives)."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] = Field(
        description="The k most likely tokens at each position, and the chosen one, token text to logprob."
    )
    text_offset: list[int] = Field(description="Where each token begins in the choice's `text`, in characters.")


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    refusal: None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    """OpenAI's `chat.completion`; `id` is `chatcmpl-` and the job's id, and `model` the served model."""

    id: str = Field(examples=["chatcmpl-6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    object: Literal["chat.completion"]
    created: int = Field(description="When the job was created, in Unix seconds.")
    model: str
    choices: list[ChatChoice]
    usage: JobUsage
    system_fingerprint: None


class TextChoice(BaseModel):
    index: int
    text: str
    logprobs: TextLogprobs | None
    finish_reason: FinishReason


class TextCompletion(BaseModel):
    """OpenAI's `text_completion`; `id` is `cmpl-` and the job's id, and `model` the served model."""

    id: str = Field(examples=["cmpl-6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    object: Literal["text_completion"]
    created: int = Field(description="When the job was created, in Unix seconds.")
    model: str
    choices: list[TextChoice]
    usage: JobUsage
    system_fingerprint: None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = Field(None, description="On the first chunk only.")
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason | None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed chat completion (the usage chunk has no choices)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    system_fingerprint: None
    usage: JobUsage | None = Field(None, description="With `include_usage` or `continuous_usage_stats`.")


class TextChunkChoice(BaseModel):
    index: int
    text: str
    logprobs: TextLogprobs | None
    finish_reason: FinishReason | None


class TextCompletionChunk(BaseModel):
    """One `data:` event of a streamed text completion (the usage chunk has no choices)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChunkChoice]
    system_fingerprint: None
    usage: JobUsage | None = Field(None, description="With `include_usage` or `continuous_usage_stats`.")


class ModelCard(BaseModel):
    """The served model, as OpenAI describes a model."""

    id: str = Field(description="MODEL_NAME, or the model folder's name.", examples=["demo-model"])
    object: Literal["model"]
    created: int = Field(description="When the model folder was last changed, in Unix seconds (0 if unreadable).")
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class OpenAIErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, for people.", examples=["n: only n=1 is supported (got 2)"])
    type: str = Field(
        description="As OpenAI types it: invalid_request_error (4xx), requests (429), server_error (5xx).",
        examples=["invalid_request_error"],
    )
    param: str | None = Field(description="The request field at fault, dotted as in `messages.0.content`.")
    code: str | None = Field(
        description="This service's own error type (invalid_input, queue_full...); invalid_api_key on 401.",
        examples=["invalid_input"],
    )


class OpenAIErrorBody(BaseModel):
    """Every error answer of the OpenAI-compatible routes: OpenAI's error shape."""

    error: OpenAIErrorDetail


def error_body(message: str, error_type: str, *, param: str | None = None, code: str | None = None) -> OpenAIErrorBody:
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""
    return OpenAIErrorBody(error=OpenAIErrorDetail(message=message, type=error_type, param=param, code=code))


class OpenAIFile(BaseModel):
    """OpenAI's file object."""

    id: str = Field(examples=["file-6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    object: Literal["file"]
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: Literal["batch", "batch_output"]
    status: Literal["processed"]
    status_details: None


class OpenAIList(BaseModel):
    """OpenAI's list object around a page of objects that have an `id`; each list names its `data`'s type."""

    object: Literal["list"]
    data: list[Any]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def page(cls, items: list[Any], has_more: bool) -> Self:
        """A page as OpenAI lists it: its first and last ids, and whether more follow."""
        return cls(
            object="list",
            data=items,
            first_id=items[0].id if items else None,
            last_id=items[-1].id if items else None,
            has_more=has_more,
        )


class OpenAIFileList(OpenAIList):
    data: list[OpenAIFile]


class OpenAIFileDeleted(BaseModel):
    id: str
    object: Literal["file"]
    deleted: Literal[True]
