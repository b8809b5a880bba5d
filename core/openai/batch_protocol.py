"""OpenAI's batch shapes as this service serves them: the `POST /v1/batches` body, the batch object and its list, and
the lines of its output and error files.

Answers are built as these models and sent as their JSON; the OpenAPI document shows the same models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.json_lines import one_line
from core.openai.protocol import ChatCompletion, Endpoint, OpenAIErrorBody, OpenAIList, TextCompletion

MIN_OUTPUT_TTL_S = 3600
MAX_OUTPUT_TTL_S = 30 * 24 * 3600

OpenAIBatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class OutputExpiresAfter(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    anchor: Literal["created_at"] = Field(description="Counted from the output file's creation.")
    seconds: int = Field(ge=MIN_OUTPUT_TTL_S, le=MAX_OUTPUT_TTL_S, description="How long output files are kept.")


class CreateOpenAIBatch(BaseModel):
    """The body of `POST /v1/batches`, as the official client sends it."""

    model_config = ConfigDict(strict=True, extra="forbid")

    input_file_id: str = Field(description="A file uploaded with `purpose=batch` (`POST /v1/files`).")
    endpoint: Endpoint = Field(strict=False, description="The endpoint every line of the file names in its `url`.")
    completion_window: Literal["24h"] = Field(description="Lines not run within it are expired.")
    metadata: dict[str, str] | None = Field(None, description="Your labels (16 pairs at most).")
    output_expires_after: OutputExpiresAfter | None = Field(
        None, description="How long the output and error files are kept (OPENAI_FILE_TTL_SECONDS by default)."
    )


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
    status: OpenAIBatchStatus
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


class OpenAIBatchList(OpenAIList):
    data: list[OpenAIBatchView]


class OpenAIBatchLineResponse(BaseModel):
    status_code: int = Field(description="200 with an answer; 400 when the line's input was at fault, else 500.")
    request_id: str = Field(description="The id of the line's job.")
    body: ChatCompletion | TextCompletion | OpenAIErrorBody


class OpenAIBatchOutputError(BaseModel):
    code: str = Field(examples=["batch_cancelled"])
    message: str


class OpenAIBatchOutputLine(BaseModel):
    """One line of an OpenAI batch's output or error file (and of `GET /batches/<id>/results?format=openai`)."""

    id: str = Field(examples=["batch_req_6f1c0e5a9b2d4c3e8f7a6b5c4d3e2f1a"])
    custom_id: str | None = Field(description="The input line's `custom_id`; null once its result is no longer kept.")
    response: OpenAIBatchLineResponse | None = Field(description="The answer or the failure; null if it never ran.")
    error: OpenAIBatchOutputError | None = Field(description="Why the line has no response (canceled, expired).")

    @property
    def is_success(self) -> bool:
        """Whether the line is an answer (OpenAI's output file) rather than a failure (its error file)."""
        return self.response is not None and self.response.status_code == 200

    def jsonl(self) -> str:
        """The line as written: JSON with non-ASCII kept, and a newline."""
        return one_line(self.model_dump(mode="json")) + "\n"
