"""The job: its status enum with allowed transitions, its validated input, and its stored shape."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from core.errors import InvalidInput, invalid_input_from
from core.jobs.priority import Priority, SubmittedPriority
from core.jobs.records import JobError, JobOutput, JobResources, JobUsage, WebhookRecord
from core.jobs.response_format import ResponseFormat, check_enforceable
from core.jobs.text_checks import check_text


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
MAX_STOP_TOKEN_IDS = 64
# OpenAI's range for presence_penalty and frequency_penalty.
MAX_PENALTY = 2.0
# What new_job_id makes: a UUID4 as 32 lowercase hex digits.
JOB_ID_PATTERN = re.compile("[0-9a-f]{32}")
MAX_METADATA_KEYS = 16
# The most samples (`n`) one job may ask for; more than the batch holds run in waves (worker/choices.py).
MAX_CHOICES = 16
# OpenAI's range for top_logprobs: how many alternatives each token's logprob comes with.
MAX_TOP_LOGPROBS = 20
# The longest prompt given as token ids (the model's context is checked by the worker).
MAX_PROMPT_TOKEN_IDS = 131_072
_STOP_STRING_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 256}
_STOP_SCHEMA = {
    "anyOf": [
        _STOP_STRING_SCHEMA,
        {"type": "array", "items": _STOP_STRING_SCHEMA, "maxItems": MAX_STOP_STRINGS},
        {"type": "null"},
    ]
}


class ChatMessage(BaseModel):
    """One turn of a chat, rendered with the model's chat template."""

    model_config = ConfigDict(strict=True, extra="forbid")

    role: Literal["system", "user", "assistant"] = Field(
        description="Who speaks: `system` sets the behaviour, `user` asks, `assistant` answered before.",
        examples=["user"],
    )
    content: str = Field(max_length=200_000, description="What this turn says.", examples=["Say hello in French."])


class JobInput(BaseModel):
    """What a job generates and how it samples: the rules of every generation, and the job's stored `input`.

    Validated once, where a request arrives; the worker reads the stored JSON back into this model.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        # The document says the part of the validator's rule that JSON Schema can say without confusing a null with an
        # absent field: one of the three is needed (the validator also refuses two at once).
        json_schema_extra={"anyOf": [{"required": [name]} for name in ("prompt", "messages", "prompt_token_ids")]},
    )

    prompt: str | None = Field(
        None,
        min_length=1,
        description="The text to continue. Give exactly one of `prompt`, `messages` or `prompt_token_ids`.",
        examples=["Once upon a time"],
    )
    messages: list[ChatMessage] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="A chat to answer, rendered with the model's chat template. Give exactly one of `prompt`, "
        "`messages` or `prompt_token_ids`.",
        examples=[[{"role": "user", "content": "Say hello in French."}]],
    )
    prompt_token_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_PROMPT_TOKEN_IDS,
        description="The text to continue, as token ids of the model's vocabulary, used as they are (no BOS is "
        "added). Instead of `prompt` or `messages`.",
        examples=[[1, 450, 4996]],
    )
    max_tokens: int = Field(
        128,
        ge=1,
        description="The maximum number of new tokens to generate (at most the deployment's MAX_TOKENS_LIMIT, "
        "4096 by default).",
        examples=[64],
    )
    min_tokens: int | None = Field(
        None,
        ge=0,
        description="The end-of-sequence token and `stop_token_ids` can't end the text before this many new tokens "
        "(at most max_tokens); 0 changes nothing.",
        examples=[8],
    )
    temperature: float = Field(
        0.7,
        ge=0.0,
        le=5.0,
        description="Controls randomness: lower is more deterministic, higher is more creative; 0 means greedy "
        "(always the most likely token). Values between 0 and 0.01 are refused.",
        examples=[0.7],
    )
    top_p: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: sample only from the smallest set of tokens whose cumulative probability "
        "reaches top_p.",
        examples=[0.9],
    )
    do_sample: bool = Field(
        True,
        description="true samples (with temperature, top_p, top_k); false always picks the most likely token (greedy).",
        examples=[True],
    )
    top_k: int | None = Field(
        None, ge=1, le=1_000_000, description="Sample only from the k most likely tokens.", examples=[50]
    )
    repetition_penalty: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="Above 1 makes tokens already in the text less likely; 1 changes nothing.",
        examples=[1.1],
    )
    presence_penalty: float | None = Field(
        None,
        ge=-MAX_PENALTY,
        le=MAX_PENALTY,
        description="Subtracted once from the logit of every token this job has already generated: above 0 "
        "favours new tokens (OpenAI's meaning); 0 changes nothing.",
        examples=[0.5],
    )
    frequency_penalty: float | None = Field(
        None,
        ge=-MAX_PENALTY,
        le=MAX_PENALTY,
        description="Subtracted from the logit of every token this job has already generated, times the number of "
        "times it was generated: above 0 discourages repeats (OpenAI's meaning); 0 changes nothing.",
        examples=[0.5],
    )
    # The before-validator below also takes one string, so the documented schema says so.
    stop: Annotated[list[str] | None, WithJsonSchema(_STOP_SCHEMA)] = Field(
        None,
        max_length=MAX_STOP_STRINGS,
        description=f"Up to {MAX_STOP_STRINGS} strings of 1 to 256 characters (or one string); the text ends "
        "before the first one that appears.",
        examples=[["\n\n"]],
    )
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        None,
        max_length=MAX_STOP_TOKEN_IDS,
        description=f"Up to {MAX_STOP_TOKEN_IDS} token ids of the model's vocabulary that end the text as its "
        "end-of-sequence token does (finish_reason `stop`; the id itself is not in the text).",
        examples=[[13]],
    )
    seed: int | None = Field(
        None, ge=0, lt=2**63, description="The same seed gives the same sample for the same input.", examples=[42]
    )
    # Generate exactly max_tokens, never ending at EOS (benchmarks; vLLM calls it the same).
    ignore_eos: bool = Field(
        False,
        description="true generates exactly max_tokens, never stopping at the end-of-sequence token (benchmarks).",
        examples=[False],
    )
    response_format: ResponseFormat | None = Field(
        None,
        description='`{"type": "json_schema", "json_schema": {"name", "schema"}}`: the text is JSON that '
        'validates against the schema (unless max_tokens cuts it: finish_reason `length`); `{"type": '
        '"json_object"}`: any JSON object; `{"type": "text"}` (the default): no constraint. A schema the '
        "service can't enforce is refused (422, `unsupported_schema`).",
        examples=[{"type": "json_object"}],
    )

    n: int | None = Field(
        None,
        ge=1,
        le=MAX_CHOICES,
        description=f"How many samples of the prompt to generate (1 to {MAX_CHOICES}): `output` holds the first, "
        "`output.choices` all of them when n > 1; the prompt's tokens are counted once in `usage`.",
        examples=[1],
    )

    logprobs: int | None = Field(
        None,
        ge=0,
        le=MAX_TOP_LOGPROBS,
        description="Return each generated token's log probability under the model's raw distribution (before "
        f"temperature, top-k, top-p and penalties), with this many most likely alternatives (0 to "
        f"{MAX_TOP_LOGPROBS}), in `output.logprobs`.",
        examples=[2],
    )
    echo: bool | None = Field(
        None,
        description="Also return the prompt's text in `output.prompt_text` and, with `logprobs`, the prompt's "
        "tokens with their log probabilities (the first has none) in `output.prompt_logprobs`.",
        examples=[False],
    )

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

    @field_validator("min_tokens")
    @classmethod
    def _min_within_max(cls, value: int | None, info: ValidationInfo) -> int | None:
        max_tokens = info.data.get("max_tokens")
        if value and max_tokens is not None and value > max_tokens:
            raise ValueError(f"must be at most max_tokens ({max_tokens})")
        return value

    @field_validator("n")
    @classmethod
    def _one_is_the_default(cls, value: int | None) -> int | None:
        # n=1 is every job's way: stored as before, without the field.
        return None if value == 1 else value

    @field_validator("stop_token_ids")
    @classmethod
    def _no_empty_list(cls, value: list[int] | None) -> list[int] | None:
        return value or None

    @field_validator("response_format")
    @classmethod
    def _json_can_end(cls, value: ResponseFormat | None, info: ValidationInfo) -> ResponseFormat | None:
        # Each of these would cut the JSON, or hold its end where the grammar allows nothing else.
        if value is not None and value.constrains:
            for name in ("ignore_eos", "stop", "stop_token_ids", "min_tokens"):
                if info.data.get(name):
                    raise ValueError(f"can't be combined with {name}: the JSON would be cut or could not end")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_usable(cls, value: float) -> float:
        # Below 0.01 the scaled logits overflow and sampling gets NaN probabilities: 0 means greedy instead.
        if 0.0 < value < 0.01:
            raise ValueError("must be 0 (greedy) or at least 0.01")
        return value

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> JobInput:
        if [self.prompt, self.messages, self.prompt_token_ids].count(None) != 2:
            raise ValueError(
                "give exactly one of `prompt` (string), `messages` (chat list) or `prompt_token_ids` (token ids)"
            )
        return self

    def token_outside(self, vocab_size: int) -> tuple[str, str] | None:
        """The first stop or prompt token id outside a vocabulary of `vocab_size`, as (field, what is wrong), or None;
        the API and the worker each refuse it in their own words."""
        for field in ("stop_token_ids", "prompt_token_ids"):
            outside = [i for i in getattr(self, field) or [] if i >= vocab_size]
            if outside:
                return (
                    field,
                    f"{field}: {outside[0]} is not a token of this model (its vocabulary has {vocab_size} tokens)",
                )
        return None

    @property
    def choice_count(self) -> int:
        """How many samples of the prompt the job generates (`n`)."""
        return self.n or 1

    @property
    def prompt_chars(self) -> int:
        """The characters of the prompt, or of every message's content."""
        return len(self.prompt or "") + sum(len(m.content) for m in self.messages or [])

    def stored(self) -> dict[str, Any]:
        """The stored `input`: unset options left out, as every version of the job store wrote it."""
        return self.model_dump(mode="json", exclude_none=True)


class GenerationParams(JobInput):
    """The generation itself: what to continue and how to sample (a batch line's `body`)."""

    metadata: dict[str, str] = Field(
        default_factory=dict,
        description=f"Your own labels, returned with the job: up to {MAX_METADATA_KEYS} pairs, keys up to 64 "
        "characters, values up to 512.",
        examples=[{"ticket": "T-1234"}],
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, str]) -> dict[str, str]:
        problem = metadata_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def job_input(self) -> JobInput:
        """The generation alone, as the job stores it (labels and delivery live elsewhere on the job)."""
        # Already valid: copied field by field rather than validated a second time.
        return JobInput.model_construct(
            _fields_set=self.model_fields_set & set(JobInput.model_fields),
            **{name: getattr(self, name) for name in JobInput.model_fields},
        )


class GenerationInput(GenerationParams):
    """The parameters of one generation, as accepted by `POST /jobs` and stored in `job.input`."""

    # Interactive work first: high and normal jobs are taken before low ones, and all before batch jobs.
    priority: SubmittedPriority = Field(
        Priority.NORMAL,
        description="high and normal jobs are taken before low ones, and all of them before batch lines.",
        examples=["normal"],
    )
    webhook: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="An http(s) URL on a public address to call (signed) when the job starts or ends.",
        examples=["https://example.com/hooks/llm"],
    )
    webhook_events: list[Literal["started", "completed"]] = Field(
        default_factory=lambda: ["completed"],
        min_length=1,
        description="Which events call the webhook.",
        examples=[["started", "completed"]],
    )

    @field_validator("webhook_events")
    @classmethod
    def _events_unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value), key=["started", "completed"].index)

    @classmethod
    def parse(cls, body: Any) -> GenerationInput:
        """A request body (decoded JSON) as a generation, or InvalidInput naming the first bad field."""
        if not isinstance(body, dict):
            raise InvalidInput("the body must be a JSON object")
        check_text(body)
        try:
            return cls.model_validate(body)
        except ValidationError as error:
            raise invalid_input_from(error) from None


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


def within_limits(params: GenerationInput, *, max_tokens_limit: int, max_prompt_chars: int) -> GenerationInput:
    """The generation under the deployment's MAX_TOKENS_LIMIT and MAX_PROMPT_CHARS, or InvalidInput."""
    if "max_tokens" not in params.model_fields_set and params.max_tokens > max_tokens_limit:
        params.max_tokens = max_tokens_limit  # the default (128) never exceeds a deployment's smaller limit
    if params.max_tokens > max_tokens_limit:
        raise InvalidInput(f"max_tokens: must be at most {max_tokens_limit}", field="max_tokens")
    if params.min_tokens and params.min_tokens > params.max_tokens:
        raise InvalidInput(f"min_tokens: must be at most max_tokens ({params.max_tokens})", field="min_tokens")
    if params.prompt_chars > max_prompt_chars:
        raise InvalidInput(f"the prompt is longer than {max_prompt_chars} characters", field="prompt")
    check_enforceable(params.response_format)
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


def is_job_id(value: str) -> bool:
    """Whether a string has the shape of a job id (so one that doesn't is unknown without asking Redis)."""
    return JOB_ID_PATTERN.fullmatch(value) is not None


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
    # Documented as the open object it always was; typed here, so the worker reads it without a dict in between.
    input: Annotated[JobInput, WithJsonSchema({"additionalProperties": True, "title": "Input", "type": "object"})]
    output: JobOutput | None = None
    error: JobError | None = None
    usage: JobUsage | None = None
    metrics: dict[str, float | None] | None = None
    resources: JobResources | None = None
    logs: list[str] = Field(default_factory=list)
    webhook: WebhookRecord | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    priority: Priority = Priority.NORMAL
    metadata: dict[str, str] = Field(default_factory=dict)
    attempts: int = 0
    worker: str | None = None
    # Who submitted it (a hash of the API key); kept out of the public view and its schema.
    owner: SkipJsonSchema[str] = "anonymous"

    @field_serializer("input")
    def _stored_input(self, value: JobInput) -> dict[str, Any]:
        return value.stored()

    def public_view(self) -> dict[str, Any]:
        """The JSON the API returns."""
        return self.model_dump(mode="json", exclude={"owner"})
