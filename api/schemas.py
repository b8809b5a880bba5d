"""The API-only shapes: error bodies, pages of jobs, the synchronous answer, probes and the metrics history; the
routes build their answers as these models, and the OpenAPI document shows them.

Request bodies are documented with the models that validate them (core.jobs.model, core.batches.model,
core.openai.translation); answers that core builds are its own models (core.batches.view, core.openai.protocol,
core.openai.batch_protocol, core.metrics.history, core.events.protocol), and query strings are api/queries.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer

from core.errors import BatchLineError, ErrorBody, ErrorDetail
from core.events.protocol import JobStatusEvent, JobTokenEvent
from core.jobs.model import Job
from core.jobs.records import JobChoice, JobResources, JobUsage
from core.metrics.history import MetricsSample
from core.openai.protocol import ChatCompletionChunk, TextCompletionChunk
from core.workers.info import WorkerInfo


class JobPage(BaseModel):
    """One page of the caller's jobs, newest first."""

    data: list[Job]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")

    # Without a return annotation the document keeps `data` as a list of Job: the public view is Job's own dump.
    @field_serializer("data")
    def _public(self, jobs: list[Job]):
        return [job.public_view() for job in jobs]


class GenerateResult(BaseModel):
    """The answer of `POST /v1/generate`."""

    id: str = Field(description="The job that served the request.")
    generated_text: str
    text: str = Field(description="The same text, named as on the job object.")
    finish_reason: Literal["stop", "length", "canceled", "timeout"] | None
    # Only when the job asked for n > 1: every choice (the text above is choice 0's).
    choices: list[JobChoice] | None = Field(None, exclude_if=lambda choices: choices is None)
    usage: JobUsage | None
    metrics: dict[str, float | None] | None
    resources: JobResources | None

    @classmethod
    def of(cls, job: Job) -> GenerateResult:
        """The answer for a job that succeeded."""
        text = job.output.text if job.output is not None else ""
        return cls(
            id=job.id,
            # `generated_text` is what synchronous clients read; `text` matches the job object.
            generated_text=text,
            text=text,
            finish_reason=job.output.finish_reason if job.output is not None else None,
            choices=job.output.choices if job.output is not None else None,
            usage=job.usage,
            metrics=job.metrics,
            resources=job.resources,
        )


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    # Sent with only the fields that were set (`answer`): details are absent, not null, for a caller without them.
    status: Literal["ready", "not_ready"]
    redis: bool | None = Field(None, description="Whether Redis answers (for a caller with a key, or a local one).")
    workers: list[WorkerInfo] | None = Field(
        None, description="The workers whose heartbeat is current, with their model (same callers only)."
    )

    def answer(self) -> dict[str, Any]:
        """The JSON sent: the fields set, here and in each worker's announcement (see WorkerInfo)."""
        return self.model_dump(mode="json", exclude_unset=True)


class MetricsHistoryView(BaseModel):
    """Samples of the last `window_seconds`, oldest first, one every `interval_seconds` (an ops worker takes them)."""

    interval_seconds: float
    window_seconds: int
    samples: list[MetricsSample]


class OpenAIFileUpload(BaseModel):
    """`POST /v1/files`: multipart form data, as the official client sends it."""

    file: bytes = Field(
        json_schema_extra={"format": "binary"}, description="The JSONL batch input (UTF-8, OPENAI_FILE_MAX_BYTES)."
    )
    purpose: Literal["batch"] = Field(description="Only `batch`: these files feed OpenAI batches.")


# The error shape lives with the typed errors that build it; its names are kept here for the document's readers.
__all__ = ["BatchLineError", "ErrorBody", "ErrorDetail"]

# What each streamed answer's events carry, for the OpenAPI document (api/openapi.py describes the events).
STREAM_EVENT_MODELS: tuple[type[BaseModel], ...] = (
    ChatCompletionChunk,
    TextCompletionChunk,
    JobStatusEvent,
    JobTokenEvent,
)
