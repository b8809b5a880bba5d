"""The job: its status enum with allowed transitions, its validated input, and its stored shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput
from core.job_records import JobError, JobOutput, JobResources, JobUsage, WebhookRecord


class JobStatus(StrEnum):
    """Where a job is in its life; terminal states never change."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED}),
    # running -> queued: a dead worker's job goes back to the queue, as does one a stopping worker hands back.
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.QUEUED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}

MAX_STOP_STRINGS = 16
MAX_METADATA_KEYS = 16


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=200_000)


class GenerationInput(BaseModel):
    """The parameters of one generation, as accepted by `POST /jobs` and stored in `job.input`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    prompt: str | None = Field(None, min_length=1)
    messages: list[ChatMessage] | None = Field(None, min_length=1, max_length=1000)
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    do_sample: bool = True
    top_k: int | None = Field(None, ge=1, le=1_000_000)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)
    stop: list[str] | None = Field(None, max_length=MAX_STOP_STRINGS)
    seed: int | None = Field(None, ge=0, lt=2**63)
    # Generate exactly max_tokens, never ending at EOS (benchmarks; vLLM calls it the same).
    ignore_eos: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    # Interactive work first: high and normal jobs are taken before low ones, and all before batch jobs.
    priority: Literal["high", "normal", "low"] = "normal"
    webhook: str | None = Field(None, min_length=1, max_length=2048)
    webhook_events: list[Literal["started", "completed"]] = Field(default_factory=lambda: ["completed"], min_length=1)

    @field_validator("webhook_events")
    @classmethod
    def _events_unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value), key=["started", "completed"].index)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        # OpenAI clients send a single string as often as a list.
        return [value] if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _stop_strings_non_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not s or len(s) > 256 for s in value):
            raise ValueError("every stop string must have 1 to 256 characters")
        return value or None

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, str]) -> dict[str, str]:
        problem = metadata_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_usable(cls, value: float) -> float:
        # Below 0.01 the scaled logits overflow and sampling gets NaN probabilities: 0 means greedy instead.
        if 0.0 < value < 0.01:
            raise ValueError("must be 0 (greedy) or at least 0.01")
        return value

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> GenerationInput:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` (string) or `messages` (chat list)")
        return self

    @property
    def generation_fields(self) -> dict[str, Any]:
        """What the engine needs, as stored in `job.input` (delivery and labels live elsewhere on the job)."""
        return self.model_dump(
            mode="json", exclude_none=True, exclude={"metadata", "webhook", "webhook_events", "priority"}
        )

    @property
    def is_greedy(self) -> bool:
        """Temperature 0 means greedy decoding, as OpenAI clients expect."""
        return not self.do_sample or self.temperature == 0.0


def metadata_problem(value: Any) -> str | None:
    """Why a metadata map is not acceptable (a small map of strings), or None."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return "must be a map of strings"
    if len(value) > MAX_METADATA_KEYS:
        return f"at most {MAX_METADATA_KEYS} keys"
    if any(len(k) > 64 or len(v) > 512 for k, v in value.items()):
        return "keys are at most 64 characters and values at most 512"
    return None


def check_metadata(value: Any) -> dict[str, str]:
    """The metadata map, or InvalidInput saying what is wrong with it."""
    problem = metadata_problem(value)
    if problem:
        raise InvalidInput(f"metadata: {problem}", field="metadata")
    return value


def parse_generation_input(body: Any, *, max_tokens_limit: int, max_prompt_chars: int) -> GenerationInput:
    """Validate a request body into a GenerationInput, or raise InvalidInput naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    try:
        params = GenerationInput.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidInput(f"{field}: {message}" if field else message, field=field) from None
    if "max_tokens" not in body and params.max_tokens > max_tokens_limit:
        params.max_tokens = max_tokens_limit  # the default (128) never exceeds a deployment's smaller limit
    if params.max_tokens > max_tokens_limit:
        raise InvalidInput(f"max_tokens: must be at most {max_tokens_limit}", field="max_tokens")
    prompt_chars = len(params.prompt or "") + sum(len(m.content) for m in params.messages or [])
    if prompt_chars > max_prompt_chars:
        raise InvalidInput(f"the prompt is longer than {max_prompt_chars} characters", field="prompt")
    return params


def utc_now_iso() -> str:
    """Now, as ISO 8601 UTC with a trailing Z."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """The inverse of utc_now_iso."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_job_id() -> str:
    """A random, URL-safe job id."""
    return uuid.uuid4().hex


class Job(BaseModel):
    """The job object, as stored in Redis and returned by the API.

    Assignments are validated, so the worker may set `output`, `usage`, `error`, `resources` or `webhook` from
    plain dicts and still store typed records.
    """

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    id: str
    status: JobStatus
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    input: dict[str, Any]
    output: JobOutput | None = None
    error: JobError | None = None
    usage: JobUsage | None = None
    metrics: dict[str, float | None] | None = None
    resources: JobResources | None = None
    logs: list[str] = Field(default_factory=list)
    webhook: WebhookRecord | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    priority: str = "normal"  # high | normal | low | batch
    metadata: dict[str, str] = Field(default_factory=dict)
    attempts: int = 0
    worker: str | None = None
    # Who submitted it (a hash of the API key); kept out of the public view.
    owner: str = "anonymous"

    def public_view(self) -> dict[str, Any]:
        """The JSON the API returns."""
        return self.model_dump(mode="json", exclude={"owner"})
