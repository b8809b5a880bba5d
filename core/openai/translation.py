"""OpenAI's chat and text completion requests as this service's generations.

Pure translation (no Flask, no Redis): the OpenAI-compatible routes and the OpenAI batch workflow both use it; the
answers are built in core/openai/answers.py.
A request field is either honoured (translated to the generation), accepted and ignored because it changes
nothing here at the value sent (`logit_bias: {}`, `user`, `store`...), or refused by
name with InvalidInput: the service never pretends to honour what it can't.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import UNSUPPORTED_FIELD, InvalidInput, invalid_input_from
from core.jobs.model import MAX_CHOICES, MAX_TOP_LOGPROBS, GenerationInput
from core.jobs.response_format import ResponseFormat
from core.jobs.text_checks import check_text
from core.openai.protocol import Endpoint

# OpenAI's documented defaults, used when a request leaves them out (the service's own are 0.7 and 0.9).
OPENAI_DEFAULT_TEMPERATURE = 1.0
OPENAI_DEFAULT_TOP_P = 1.0
# The legacy completions endpoint generates 16 tokens unless told otherwise.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
# Prompts one `POST /v1/completions` may carry, each its own job: a batch of an evaluation harness fits; more is
# what the batch API is for.
MAX_PROMPTS = 64
# Below this the service refuses a temperature (its sampling would overflow); OpenAI clients mean "greedy" by it.
_SMALLEST_SAMPLING_TEMPERATURE = 0.01


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def _refuse_unless(value: Any, neutral: tuple[Any, ...], why: str) -> Any:
    """Accept a field only at a value that changes nothing here; otherwise say, by name, that it can't be honoured."""
    if value is None or value in neutral:
        return value
    raise ValueError(why)


class TextPart(_Strict):
    """A text part of a message's content (OpenAI's content array); images, audio and files are refused."""

    type: Literal["text"] = Field(description="Only `text` parts: this server reads text only.")
    text: str


class OpenAIChatMessage(_Strict):
    """One message of an OpenAI chat; tool and function messages are refused (this server runs no tools)."""

    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="`developer` is read as `system`. Tool and function messages are not supported."
    )
    content: str | list[TextPart] = Field(description="A string, or a list of text parts (joined by new lines).")
    name: str | None = Field(None, description="Accepted and ignored.")

    @field_validator("role", mode="before")
    @classmethod
    def _no_tool_messages(cls, value: Any) -> Any:
        if value in ("tool", "function"):
            raise ValueError(f"`{value}` messages are not supported: this server calls no tools or functions")
        return value

    def as_service_message(self) -> dict[str, str]:
        content = self.content if isinstance(self.content, str) else "\n".join(part.text for part in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": content}


class StreamOptions(_Strict):
    include_usage: bool | None = Field(None, description="Send one last chunk with the usage before `[DONE]`.")
    continuous_usage_stats: bool | None = Field(
        None,
        description="vLLM's: every chunk carries `usage`; the chunk that closes the choice has the job's counts "
        "(token counts are known once the job ends, so text chunks carry null).",
    )


class _CommonRequest(_Strict):
    """What both endpoints take."""

    model: str | None = Field(
        None, description="Any name: the served model answers, and the response names it.", examples=["demo"]
    )
    max_tokens: int | None = Field(None, ge=1, description="The most tokens to generate (MAX_TOKENS_LIMIT at most).")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0 is greedy; default 1.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling; default 1.")
    stop: str | list[str] | None = Field(None, description="Up to 16 strings of 1 to 256 characters (or one string).")
    seed: int | None = Field(None, description="The same seed gives the same sample for the same input (0 or more).")
    stream: bool | None = Field(None, description="Answer as server-sent events, ending with `data: [DONE]`.")
    stream_options: StreamOptions | None = None
    n: int | None = Field(
        None,
        description=f"How many choices to sample from the prompt, 1 to {MAX_CHOICES} (the prompt's tokens are counted "
        "once in `usage`); streamed, choice 0 comes as it is written and the others whole once the job ends.",
    )
    user: str | None = Field(None, description="Accepted and ignored.")
    frequency_penalty: float | None = Field(
        None, description="-2 to 2: lowers each generated token's logit by this times its count so far; default 0."
    )
    presence_penalty: float | None = Field(
        None, description="-2 to 2: lowers the logit of every token generated so far by this, once; default 0."
    )
    logit_bias: dict[str, float] | None = Field(None, description="Only empty (not supported).")
    # Extensions that OpenAI-compatible servers (vLLM) accept beside OpenAI's own fields; the service supports them.
    top_k: int | None = Field(None, ge=1, le=1_000_000, description="Sample only from the k most likely tokens.")
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0, description="Above 1 discourages repeats.")
    ignore_eos: bool | None = Field(None, description="Generate exactly max_tokens (benchmarks).")
    min_tokens: int | None = Field(
        None, ge=0, description="EOS and stop_token_ids can't end the text before this many tokens (vLLM's)."
    )
    stop_token_ids: list[int] | None = Field(
        None, description="Token ids that end the text as EOS does, up to 64 (vLLM's); not in the text."
    )
    response_format: ResponseFormat | None = Field(
        None,
        description="`json_schema` (the text validates against the schema unless max_tokens cuts it), `json_object` "
        "or `text`; a schema that can't be enforced is a 422 `unsupported_schema`.",
    )

    def to_generation_inputs(self) -> list[GenerationInput]:
        """This request as the service's generations (jobs' inputs): one, or one per prompt of a completion with
        several; InvalidInput naming the field as it was sent.

        The service's own rules (stop strings, seed range, metadata) apply here, once; deployment limits
        (MAX_TOKENS_LIMIT, MAX_PROMPT_CHARS, the model's context) are the submit use case's.
        """
        return [self._generation_input(body, renamed) for body, renamed in self._texts_and_lengths()]

    def _generation_input(self, body: dict[str, Any], renamed: dict[str, str]) -> GenerationInput:
        temperature = self.temperature if self.temperature is not None else OPENAI_DEFAULT_TEMPERATURE
        # OpenAI clients send tiny temperatures to mean "as deterministic as possible": that is greedy here.
        body["temperature"] = 0.0 if temperature < _SMALLEST_SAMPLING_TEMPERATURE else float(temperature)
        body["top_p"] = float(self.top_p) if self.top_p is not None else OPENAI_DEFAULT_TOP_P
        for name in ("stop", "seed", "top_k", "repetition_penalty", "ignore_eos", "min_tokens", "stop_token_ids", "n"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.response_format is not None and self.response_format.constrains:
            # `text` is the service's default already: the job is then the same as without it.
            body["response_format"] = self.response_format
        for name in ("frequency_penalty", "presence_penalty"):
            # 0, which clients often send, changes nothing: the job is then the same as without it.
            value = getattr(self, name)
            if value:
                body[name] = float(value)
        try:
            return GenerationInput.model_validate(body)
        except ValidationError as error:
            raise invalid_input_from(error, renamed=renamed, type_messages=UNSUPPORTED_FIELD) from None

    def _texts_and_lengths(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """Each generation's text, length (and labels), and which of its fields this request names otherwise."""
        raise NotImplementedError

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, value: dict | None) -> dict | None:
        return _refuse_unless(value, ({},), "only an empty map is supported: this server can't bias tokens")


class ChatCompletionRequest(_CommonRequest):
    """An OpenAI `POST /v1/chat/completions` body; fields this server can't honour are refused by name."""

    messages: list[OpenAIChatMessage] = Field(min_length=1, max_length=1000, description="The chat to answer.")
    max_completion_tokens: int | None = Field(None, ge=1, description="The same as max_tokens (OpenAI's newer name).")
    metadata: dict[str, str] | None = Field(None, description="Your labels, kept on the job (16 pairs at most).")
    logprobs: bool | None = Field(
        None,
        description="Return each generated token's log probability (under the model's raw distribution, before "
        "temperature, top-k, top-p and penalties) in `choices[].logprobs.content`.",
    )
    top_logprobs: int | None = Field(
        None,
        ge=0,
        le=MAX_TOP_LOGPROBS,
        description=f"With `logprobs: true`: how many most likely tokens (0 to {MAX_TOP_LOGPROBS}) come with each "
        "token.",
    )
    tools: list[dict[str, Any]] | None = Field(None, description="Only empty (tools are not supported).")
    tool_choice: str | dict[str, Any] | None = Field(None, description="Only `none` or `auto` without tools.")
    parallel_tool_calls: bool | None = Field(None, description="Accepted and ignored (no tools).")
    functions: list[dict[str, Any]] | None = Field(None, description="Only empty (functions are not supported).")
    function_call: str | dict[str, Any] | None = Field(None, description="Only `none` or `auto` without functions.")
    modalities: list[str] | None = Field(None, description='Only `["text"]`.')
    store: bool | None = Field(None, description="Accepted and ignored: every job is kept until JOB_TTL_SECONDS.")
    service_tier: str | None = Field(None, description="Accepted and ignored.")
    prompt_cache_key: str | None = Field(None, description="Accepted and ignored.")
    safety_identifier: str | None = Field(None, description="Accepted and ignored.")
    # Features this server does not have: present only to be refused by name with a reason.
    audio: dict[str, Any] | None = Field(None, description="Not supported.")
    prediction: dict[str, Any] | None = Field(None, description="Not supported.")
    web_search_options: dict[str, Any] | None = Field(None, description="Not supported.")
    reasoning_effort: str | None = Field(None, description="Not supported (not a reasoning model).")
    verbosity: str | None = Field(None, description="Not supported.")

    def _texts_and_lengths(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        body: dict[str, Any] = {"messages": [message.as_service_message() for message in self.messages]}
        renamed: dict[str, str] = {}
        max_tokens = self.max_tokens
        if self.max_completion_tokens is not None:
            if max_tokens is not None and max_tokens != self.max_completion_tokens:
                raise InvalidInput(
                    "max_completion_tokens: differs from max_tokens; send one of them", field="max_completion_tokens"
                )
            max_tokens = self.max_completion_tokens
            renamed["max_tokens"] = "max_completion_tokens"
        if self.metadata:
            body["metadata"] = self.metadata
        if self.top_logprobs and not self.logprobs:
            raise InvalidInput("top_logprobs: needs logprobs: true", field="top_logprobs")
        if self.logprobs:
            body["logprobs"] = self.top_logprobs or 0
            renamed["logprobs"] = "top_logprobs"
        if max_tokens is not None:  # absent: the service's default, within the deployment's limit
            body["max_tokens"] = max_tokens
        return [(body, renamed)]

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list | None) -> list | None:
        return _refuse_unless(value, ([],), "not supported: this server calls no tools or functions")

    @field_validator("tool_choice", "function_call")
    @classmethod
    def _no_tool_choice(cls, value: str | dict | None) -> str | dict | None:
        return _refuse_unless(value, ("none", "auto"), "only `none` or `auto` is supported (no tools)")

    @field_validator("modalities")
    @classmethod
    def _text_only(cls, value: list[str] | None) -> list[str] | None:
        return _refuse_unless(value, (["text"],), 'only ["text"] is supported: this server writes text only')

    @field_validator("audio", "prediction", "web_search_options", "reasoning_effort", "verbosity")
    @classmethod
    def _not_supported(cls, value: Any) -> Any:
        return _refuse_unless(value, (), "not supported by this server")


class CompletionRequest(_CommonRequest):
    """An OpenAI `POST /v1/completions` body; fields this server can't honour are refused by name."""

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="A prompt: a string or token ids (a list of ints, used as they are: no BOS is added); or up to "
        f"{MAX_PROMPTS} prompts, a list of strings or of token-id lists, each its own job, answered together "
        "(prompt i's choice j has index i * n + j; streamed, one prompt's chunks after another's)."
    )
    max_tokens: int | None = Field(None, ge=1, description="The most tokens to generate; default 16.")
    logprobs: int | None = Field(
        None,
        ge=0,
        le=MAX_TOP_LOGPROBS,
        description="Return each token's log probability (under the model's raw distribution, before temperature, "
        f"top-k, top-p and penalties) with this many most likely tokens (0 to {MAX_TOP_LOGPROBS}) in "
        "`choices[].logprobs`; the chosen token is always among `top_logprobs`.",
    )
    echo: bool | None = Field(
        None, description="Return the prompt before the generated text (and its tokens' logprobs, with `logprobs`)."
    )
    best_of: int | None = Field(None, description="Only 1 (not supported).")
    suffix: str | None = Field(None, description="Not supported.")

    def _prompts(self) -> list[tuple[str, str | list[int]]]:
        """Each prompt as the field it was sent in (`prompt`, or `prompt.<i>` in a list) and its text or ids."""
        prompt = self.prompt
        if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
            return [("prompt", prompt)]
        return [(f"prompt.{index}", one) for index, one in enumerate(prompt)]

    def _texts_and_lengths(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        generations = []
        for sent_as, prompt in self._prompts():
            name = "prompt" if isinstance(prompt, str) else "prompt_token_ids"
            body: dict[str, Any] = {name: prompt}
            body["max_tokens"] = self.max_tokens if self.max_tokens is not None else COMPLETIONS_DEFAULT_MAX_TOKENS
            if self.logprobs is not None:
                body["logprobs"] = self.logprobs
            if self.echo:
                body["echo"] = True
            generations.append((body, {name: sent_as}))
        return generations

    @field_validator("prompt")
    @classmethod
    def _some_prompts(cls, value: str | list) -> str | list:
        if isinstance(value, list) and value and isinstance(value[0], int):
            return value  # one prompt as token ids
        if isinstance(value, list) and not 1 <= len(value) <= MAX_PROMPTS:
            raise ValueError(f"1 to {MAX_PROMPTS} prompts per request (got {len(value)}): send more requests")
        return value

    @field_validator("best_of")
    @classmethod
    def _one_candidate(cls, value: int | None) -> int | None:
        return _refuse_unless(value, (1,), "only 1 is supported: one candidate per request")

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        return _refuse_unless(value, (), "not supported: this server only continues text")


_REQUEST_MODELS: dict[Endpoint, type[_CommonRequest]] = {
    Endpoint.CHAT_COMPLETIONS: ChatCompletionRequest,
    Endpoint.COMPLETIONS: CompletionRequest,
}


@dataclass(frozen=True)
class OpenAIRequest:
    """An OpenAI request as the service will run it: its generations (each submitted like any job's: one, or one per
    prompt of a completion with several) and how the answer is sent."""

    endpoint: Endpoint
    generations: tuple[GenerationInput, ...]
    stream: bool
    include_usage: bool
    continuous_usage: bool
    requested_model: str | None

    @property
    def params(self) -> GenerationInput:
        """The generation of a request with one (every chat; a completion with one prompt)."""
        if len(self.generations) != 1:
            raise ValueError(f"this request has {len(self.generations)} generations, not one")
        return self.generations[0]


def parse_openai_request(endpoint: Endpoint, body: Any) -> OpenAIRequest:
    """An OpenAI request body for this endpoint as generations, or InvalidInput naming the field at fault.

    Deployment limits (MAX_TOKENS_LIMIT, MAX_PROMPT_CHARS, the model's context) are the submit use case's to apply.
    """
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    check_text(body)
    try:
        request = _REQUEST_MODELS[endpoint].model_validate(body)
    except ValidationError as error:
        raise invalid_input_from(error, type_messages=UNSUPPORTED_FIELD) from None
    if request.stream_options is not None and not request.stream:
        raise InvalidInput("stream_options: only allowed with stream: true", field="stream_options")
    generations = tuple(request.to_generation_inputs())
    return OpenAIRequest(
        endpoint=endpoint,
        generations=generations,
        stream=bool(request.stream),
        include_usage=bool(request.stream and request.stream_options and request.stream_options.include_usage),
        continuous_usage=bool(
            request.stream and request.stream_options and request.stream_options.continuous_usage_stats
        ),
        requested_model=request.model,
    )
