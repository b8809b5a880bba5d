"""What is stored about an OpenAI batch beside its native batch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.openai.batch_protocol import OpenAIBatchLineError, OpenAIBatchUsage, OpenAIRequestCounts
from core.openai.protocol import Endpoint


class NativeProgress(BaseModel):
    """The part of OpenAI's batch object read from the native batch: times, request counts, token usage."""

    in_progress_at: int | None
    cancelling_at: int | None
    request_counts: OpenAIRequestCounts | None
    usage: OpenAIBatchUsage | None


class OpenAIBatch(BaseModel):
    """What is stored about an OpenAI batch besides its native batch; once finished, what the object then says."""

    model_config = ConfigDict(validate_assignment=True)

    id: str
    owner: str
    endpoint: Endpoint
    input_file_id: str
    completion_window: str
    created_at: int
    expires_at: int
    metadata: dict[str, str] = Field(default_factory=dict)
    output_ttl_s: int | None = None
    # Refused input: no native batch exists.
    failed_at: int | None = None
    errors: list[OpenAIBatchLineError] | None = None
    # Its window ended with lines still queued: those were canceled.
    expired_at: int | None = None
    # Once the output files are written, the native batch's part of the object is kept here (it may expire first).
    final_status: Literal["completed", "cancelled", "expired"] | None = None
    finished_at: int | None = None
    finalizing_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    final: NativeProgress | None = None
