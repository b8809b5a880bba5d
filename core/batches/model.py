"""Batches: many prompts under one handle, in the OpenAI Batch API's JSONL convention (custom_id + body).

The stored record, its status, its id, and the models of a batch's lines and body; reading and validating a body
is core/batches/lines.py, and the batch object the API answers with is core/batches/view.py.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from core.jobs.model import GenerationParams
from core.jobs.records import WebhookRecord
from core.openai.protocol import Endpoint
from core.openai.translation import ChatCompletionRequest, CompletionRequest

MAX_BATCH_LINES = 50_000
MAX_CUSTOM_ID_CHARS = 256


class BatchStatus(StrEnum):
    """queued -> running -> completed; canceled once a cancel was asked (its running jobs still finish)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"


class Batch(BaseModel):
    """What is stored about a batch; counts and tokens live in a Redis hash beside it (see BatchStore)."""

    model_config = ConfigDict(validate_assignment=True)

    id: str
    created_at: str
    total: int
    webhook: WebhookRecord | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    cancel_requested_at: str | None = None
    owner: str = "anonymous"


# What new_batch_id makes: `batch_` and a UUID4 as 32 lowercase hex digits.
BATCH_ID_PATTERN = re.compile("batch_[0-9a-f]{32}")


def new_batch_id() -> str:
    """A random, URL-safe batch id."""
    return f"batch_{uuid.uuid4().hex}"


def is_batch_id(value: str) -> bool:
    """Whether a string has the shape of a batch id (so one that doesn't is unknown without asking Redis)."""
    return BATCH_ID_PATTERN.fullmatch(value) is not None


class BatchRequestLine(BaseModel):
    """One line of a batch (one JSONL line, or one item of a JSON list): your id for it and its generation."""

    custom_id: str = Field(
        min_length=1,
        max_length=MAX_CUSTOM_ID_CHARS,
        description="Your id for this line, unique within the batch; the results name it.",
        examples=["q1"],
    )
    body: GenerationParams | ChatCompletionRequest | CompletionRequest = Field(
        description="The generation, with the rules of `POST /jobs` (webhook and priority are set on the batch); "
        "in OpenAI's format, the OpenAI request for the line's `url`."
    )
    method: Literal["POST"] | None = Field(None, description="OpenAI's batch format: `POST`.")
    url: Endpoint | None = Field(
        None,
        description="OpenAI's batch format: `/v1/chat/completions` or `/v1/completions`; the `body` is then that "
        "endpoint's OpenAI request (`model`, `messages` or `prompt`, `max_tokens`...).",
    )


class BatchEnvelope(BaseModel):
    """A batch as one JSON object: its lines, and the webhook and metadata of the batch (no other key)."""

    model_config = ConfigDict(extra="forbid")

    requests: list[BatchRequestLine] = Field(min_length=1, max_length=MAX_BATCH_LINES, description="The lines.")
    webhook: str | None = Field(
        None,
        description="An http(s) URL on a public address to call (signed) with `batch.completed`; overrides the "
        "`webhook` query parameter.",
        examples=["https://example.com/hooks/batches"],
    )
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="Your own labels for the batch (up to 16 pairs, keys up to 64 characters, values up to 512).",
    )


class BatchJsonBody(RootModel[BatchEnvelope | list[BatchRequestLine]]):
    """A JSON batch body: the envelope, or a plain list of lines."""
