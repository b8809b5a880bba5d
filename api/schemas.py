"""The shapes the API answers with and the query strings it reads, as models for the OpenAPI document.

Request bodies are documented with the models that validate them (core.jobs.model, core.batches.model); the answers here
mirror what the routes return, and the schema tests hold every answer to them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from core.batches.model import BATCH_ID_PATTERN, BatchStatus
from core.events.stream import EVENT_ID_PATTERN
from core.jobs.model import Job, JobStatus
from core.jobs.records import JobResources, JobUsage, WebhookRecord
from core.openai.files import FILE_ID_PATTERN

MAX_PAGE_SIZE = 100
# A page cursor is the sequence number of the last item seen, as the decimal string `next_cursor` gives.
CURSOR_PATTERN = r"^[0-9]{0,19}$"


class BatchLineError(BaseModel):
    line: int = Field(description="The 1-based number of the bad line.")
    message: str = Field(description="What is wrong with it.")


class ErrorDetail(BaseModel):
    type: str = Field(
        description="Stable kind of error: malformed_body (400), unauthorized (401), not_found (404), "
        "method_not_allowed (405), wrong_state (409), body_too_large (413), unsupported_media_type (415), "
        "invalid_input (422), queue_full and store_unavailable (503), timeout (504); a failed generation "
        "answers 500 with the job's own error type.",
        examples=["invalid_input"],
    )
    message: str = Field(description="What went wrong, for people.", examples=["max_tokens: must be at most 4096"])
    field: str | None = Field(
        None,
        description="The request field at fault, dotted as in `messages.0.content`; absent when no one field is.",
        examples=["max_tokens"],
    )
    job_id: str | None = Field(
        None, description="Whenever the request's job was stored (504, 503, a failed generation): the job to poll."
    )
    lines: list[BatchLineError] | None = Field(None, description="On a refused batch: each bad line and why.")


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail


class JobPage(BaseModel):
    """One page of the caller's jobs, newest first."""

    data: list[Job]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class BatchCounts(BaseModel):
    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class BatchUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class BatchView(BaseModel):
    """A batch: its status, counts of its jobs by status, times, tokens so far, its pace and ETA."""

    id: str = Field(examples=["batch_6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    status: BatchStatus
    created_at: str
    started_at: str | None
    completed_at: str | None
    cancel_requested_at: str | None
    total: int = Field(description="Lines in the batch.")
    counts: BatchCounts
    usage: BatchUsage
    tokens_per_second: float | None = Field(
        description="Completion tokens per second since the first job started (until the last one ended); null "
        "before any job starts."
    )
    eta_seconds: float | None = Field(
        description="Seconds until every line is done at the pace so far; 0 once done, null before any line finishes."
    )
    webhook: WebhookRecord | None
    metadata: dict[str, str]


class BatchCancellation(BatchView):
    canceled_now: bool = Field(description="Whether this call canceled it (false: it already was).")


class BatchPage(BaseModel):
    """One page of the caller's batches, newest first."""

    data: list[BatchView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class GenerateResult(BaseModel):
    """The answer of `POST /v1/generate`."""

    id: str = Field(description="The job that served the request.")
    generated_text: str
    text: str = Field(description="The same text, named as on the job object.")
    finish_reason: Literal["stop", "length", "canceled", "timeout"] | None
    usage: JobUsage | None
    metrics: dict[str, float | None] | None
    resources: JobResources | None


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    redis: bool | None = Field(None, description="Whether Redis answers (for a caller with a key, or a local one).")
    workers: list[dict[str, Any]] | None = Field(
        None, description="The workers whose heartbeat is current, with their model (same callers only)."
    )


class PageQuery(BaseModel):
    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1 to {MAX_PAGE_SIZE}.", examples=[20])
    cursor: str = Field("", pattern=CURSOR_PATTERN, description="A page's `next_cursor`; empty for the first page.")


class JobPageQuery(PageQuery):
    status: JobStatus | None = Field(None, description="Only jobs in this status.")


class EventsQuery(BaseModel):
    last_event_id: str = Field(
        "",
        pattern=f"^({EVENT_ID_PATTERN.pattern})?$",
        description="Resume after this event id (what `Last-Event-ID` says, for clients that can't send that "
        "header); empty: from the start.",
        examples=["1718000000000-0"],
    )


class BatchQuery(BaseModel):
    webhook: str | None = Field(
        None,
        description="The batch's webhook, for a JSONL or list body (an envelope's own `webhook` wins).",
        examples=["https://example.com/hooks/batches"],
    )


class WorkerMemorySample(BaseModel):
    """One live GPU worker's memory at a sample (GB, as in the job's resource log; null if it did not say)."""

    name: str = Field(description="The worker's name, as in /readyz and the job's `worker`.")
    vram_allocated_gb: float | None
    vram_reserved_gb: float | None
    ram_used_gb: float | None
    ram_total_gb: float | None


class MetricsSample(BaseModel):
    """The service at one moment."""

    timestamp: float = Field(description="Unix time in seconds (Redis's clock) when the sample was taken.")
    queue_depth: int = Field(description="Jobs queued (waiting for the GPU).")
    jobs_in_flight: int = Field(description="Jobs running.")
    tokens_total: int = Field(description="Completion tokens of all finished jobs so far (never goes down).")
    tokens_per_second: float | None = Field(
        description="Completion tokens counted since the previous sample, per second (tokens are counted when "
        "their job ends); null for the first sample."
    )
    workers: list[WorkerMemorySample] = Field(description="The GPU workers alive at that moment.")


class MetricsHistoryView(BaseModel):
    """Samples of the last `window_seconds`, oldest first, one every `interval_seconds` (an ops worker takes them)."""

    interval_seconds: float
    window_seconds: int
    samples: list[MetricsSample]


class MetricsHistoryQuery(BaseModel):
    since: float = Field(
        0, ge=0, description="Only samples taken after this Unix time (a previous answer's last `timestamp`)."
    )


class ResultsQuery(BaseModel):
    format: Literal["native", "openai"] = Field(
        "native",
        description="`native`: every line with its job's status; `openai`: OpenAI batch output lines of the "
        "finished lines (`id`, `custom_id`, `response` with `status_code`, `request_id` and `body`, `error`).",
    )


class OpenAIPageQuery(BaseModel):
    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1 to {MAX_PAGE_SIZE}.")
    after: str = Field(
        "",
        pattern=f"^({BATCH_ID_PATTERN.pattern})?$",
        description="The last id of the previous page (one of your listed batches); empty: the first page.",
    )


class OpenAIFileQuery(BaseModel):
    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1 to {MAX_PAGE_SIZE}.")
    after: str = Field(
        "",
        pattern=f"^({FILE_ID_PATTERN.pattern})?$",
        description="The last id of the previous page (one of your listed files); empty: the first page.",
    )
    purpose: Literal["batch", "batch_output"] | None = Field(None, description="Only files of this purpose.")
    order: Literal["desc"] = Field("desc", description="Newest first (the only order here).")


class OpenAIFileUpload(BaseModel):
    """`POST /v1/files`: multipart form data, as the official client sends it."""

    file: bytes = Field(
        json_schema_extra={"format": "binary"}, description="The JSONL batch input (UTF-8, OPENAI_FILE_MAX_BYTES)."
    )
    purpose: Literal["batch"] = Field(description="Only `batch`: these files feed OpenAI batches.")


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


class OpenAIFileList(BaseModel):
    object: Literal["list"]
    data: list[OpenAIFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class OpenAIFileDeleted(BaseModel):
    id: str
    object: Literal["file"]
    deleted: Literal[True]


class OpenAIBatchLineError(BaseModel):
    code: str
    line: int | None
    message: str
    param: str | None


class OpenAIBatchErrors(BaseModel):
    object: Literal["list"]
    data: list[OpenAIBatchLineError]


class OpenAIRequestCounts(BaseModel):
    total: int
    completed: int = Field(description="Lines answered (in the output file).")
    failed: int = Field(description="Lines that ended without an answer (in the error file), canceled ones included.")


class OpenAIInputTokensDetails(BaseModel):
    cached_tokens: int


class OpenAIOutputTokensDetails(BaseModel):
    reasoning_tokens: int


class OpenAIBatchUsage(BaseModel):
    input_tokens: int
    input_tokens_details: OpenAIInputTokensDetails
    output_tokens: int
    output_tokens_details: OpenAIOutputTokensDetails
    total_tokens: int


class OpenAIBatchView(BaseModel):
    """OpenAI's batch object over a batch of this service (same id: `GET /batches/<id>` reads it natively too)."""

    id: str = Field(examples=["batch_6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    object: Literal["batch"]
    endpoint: Literal["/v1/chat/completions", "/v1/completions"]
    model: str
    errors: OpenAIBatchErrors | None
    input_file_id: str
    completion_window: str
    status: Literal[
        "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
    ]
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: OpenAIRequestCounts | None
    usage: OpenAIBatchUsage | None
    metadata: dict[str, str]


class OpenAIBatchList(BaseModel):
    object: Literal["list"]
    data: list[OpenAIBatchView]
    first_id: str | None
    last_id: str | None
    has_more: bool


# The OpenAI-compatible routes answer in OpenAI's shapes (core/openai/translation.py builds them).


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


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    refusal: None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    """OpenAI's `chat.completion`; `id` is `chatcmpl-` and the job's id, and `model` the served model."""

    id: str = Field(examples=["chatcmpl-6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    object: Literal["chat.completion"]
    created: int = Field(description="When the job was created, in Unix seconds.")
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    system_fingerprint: None


class TextChoice(BaseModel):
    index: int
    text: str
    logprobs: None
    finish_reason: Literal["stop", "length"]


class TextCompletion(BaseModel):
    """OpenAI's `text_completion`; `id` is `cmpl-` and the job's id, and `model` the served model."""

    id: str = Field(examples=["cmpl-6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    object: Literal["text_completion"]
    created: int = Field(description="When the job was created, in Unix seconds.")
    model: str
    choices: list[TextChoice]
    usage: CompletionUsage
    system_fingerprint: None


class ModelCard(BaseModel):
    """The served model, as OpenAI describes a model."""

    id: str = Field(description="MODEL_NAME, or the model folder's name.", examples=["demo-model"])
    object: Literal["model"]
    created: int = Field(description="When the model folder was last changed, in Unix seconds (0 if unreadable).")
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = Field(None, description="On the first chunk only.")
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: None
    finish_reason: Literal["stop", "length"] | None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed chat completion (the usage chunk has no choices)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    system_fingerprint: None
    usage: CompletionUsage | None = Field(None, description="With `include_usage` or `continuous_usage_stats`.")


class TextChunkChoice(BaseModel):
    index: int
    text: str
    logprobs: None
    finish_reason: Literal["stop", "length"] | None


class TextCompletionChunk(BaseModel):
    """One `data:` event of a streamed text completion (the usage chunk has no choices)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChunkChoice]
    system_fingerprint: None
    usage: CompletionUsage | None = Field(None, description="With `include_usage` or `continuous_usage_stats`.")


class JobStatusEvent(BaseModel):
    """The data of a `status` event of `GET /jobs/<id>/events`."""

    status: JobStatus


class JobTokenEvent(BaseModel):
    """The data of a `token` event: a delta of whole characters; they concatenate to `output.text`."""

    text: str


# What each streamed answer's events carry, for the OpenAPI document (api/openapi.py describes the events).
STREAM_EVENT_MODELS: tuple[type[BaseModel], ...] = (
    ChatCompletionChunk,
    TextCompletionChunk,
    JobStatusEvent,
    JobTokenEvent,
)
