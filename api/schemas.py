"""The API-only shapes: error bodies, pages of jobs, the synchronous answer, probes, metrics, events and the query
strings that routes still read themselves, as models for the OpenAPI document.

Request bodies are documented with the models that validate them (core.jobs.model, core.batches.model,
core.openai.translation); answers that core builds are its own models (core.batches.view, core.openai.protocol,
core.openai.batch_protocol), and validated query strings are api/queries.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from core.events.stream import EVENT_ID_PATTERN
from core.jobs.model import Job, JobStatus
from core.jobs.records import JobResources, JobUsage
from core.openai.protocol import ChatCompletionChunk, TextCompletionChunk


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


class OpenAIFileUpload(BaseModel):
    """`POST /v1/files`: multipart form data, as the official client sends it."""

    file: bytes = Field(
        json_schema_extra={"format": "binary"}, description="The JSONL batch input (UTF-8, OPENAI_FILE_MAX_BYTES)."
    )
    purpose: Literal["batch"] = Field(description="Only `batch`: these files feed OpenAI batches.")


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
