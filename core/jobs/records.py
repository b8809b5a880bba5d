"""The typed parts of a job (and a batch): output, usage, error, resources, webhook record.

They dump to the same JSON the dicts they replaced had, so stored jobs read the same.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import ErrorType


class Record(BaseModel):
    """A typed part of a job or batch: read by attribute; a field it does not declare is refused."""

    model_config = ConfigDict(extra="forbid")


class TopLogprob(Record):
    """One of the most likely tokens at a position, with its log probability."""

    token_id: int
    token: str
    logprob: float


class TokenLogprob(Record):
    """One token of the text with its log probability under the model's raw distribution, and the `top` most
    likely tokens at its position (most likely first). A prompt's first token has no logprob (null)."""

    token_id: int
    token: str
    logprob: float | None
    top: list[TopLogprob] = Field(default_factory=list)


FinishReason = Literal["stop", "length", "canceled", "timeout"]


class JobChoice(Record):
    """One of a job's `n` samples of its prompt: its own text, why it ended, and its new tokens."""

    index: int
    text: str
    finish_reason: FinishReason
    completion_tokens: int
    # The choice's own tokens with their logprobs, when the job asked (`logprobs`).
    logprobs: list[TokenLogprob] | None = Field(None, exclude_if=lambda value: value is None)


class JobOutput(Record):
    """Choice 0's text and finish reason (what every client reads); with n > 1, every choice in `choices` too."""

    text: str
    finish_reason: FinishReason
    # Left out for a one-choice job: its output stays the two fields it always had.
    choices: list[JobChoice] | None = Field(None, exclude_if=lambda choices: choices is None)
    # Only for jobs that asked (`logprobs`, `echo`): left out of the JSON otherwise, so other jobs read the same.
    logprobs: list[TokenLogprob] | None = Field(None, exclude_if=lambda value: value is None)
    prompt_logprobs: list[TokenLogprob] | None = Field(None, exclude_if=lambda value: value is None)
    prompt_text: str | None = Field(None, exclude_if=lambda value: value is None)


class JobUsage(Record):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class JobError(Record):
    type: ErrorType
    message: str


class ResourceReading(Record):
    """One RAM/VRAM sample, in GB (the units of the resource log line)."""

    gpu: str
    vram_allocated_gb: float
    vram_reserved_gb: float
    ram_used_gb: float
    ram_total_gb: float
    ram_percent: float


class JobResources(Record):
    before: ResourceReading
    after: ResourceReading
    peak_vram_allocated_gb: float
    peak_vram_reserved_gb: float
    batch_size: int


class WebhookState(StrEnum):
    """What an event's delivery ends as; "pending" until then."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # the last attempt failed
    GONE = "gone"  # the receiver answered 410: it wants no more
    REFUSED = "refused"  # the URL now resolves to an address that may not be called


class WebhookAttempt(Record):
    """One delivery attempt: the receiver's status code, or the error that stopped the request."""

    event: Literal["started", "completed"]
    webhook_id: str
    attempt: int
    at: str
    status_code: int | None
    error: str | None


class WebhookRecord(Record):
    """A job's (or batch's) callback: where, for which events, how each event's delivery ended, every attempt."""

    url: str
    events: list[Literal["started", "completed"]]
    state: dict[str, WebhookState] = Field(default_factory=dict)
    deliveries: list[WebhookAttempt] = Field(default_factory=list)
