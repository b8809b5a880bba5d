"""What every engine shares: prompt encoding, the result and how it is built, typed failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import ErrorType
from core.jobs.model import JobInput
from core.jobs.records import JobError
from worker.logprobs import TokenLogprob, as_records
from worker.stop_strings import tokens_up_to_stop


class EngineInputError(Exception):
    """The job's input can't be run by this model (no chat template, longer than the context)."""


class EngineFailed(Exception):
    """The engine could not produce a result for this job (its error says why)."""


class EngineDead(Exception):
    """One of the engine's threads died: no job can run in this process any more (its jobs go back to the queue)."""


class EngineStopped(Exception):
    """The engine is shutting down: the job did not finish here and goes back to the queue."""


@dataclass(frozen=True)
class ChoiceResult:
    """One of a job's n samples: its text, why it ended, its new tokens (worker/choices.py builds these)."""

    text: str
    finish_reason: str
    completion_tokens: int
    # The choice's own tokens' records, when the job asked for logprobs (as GenerationResult.logprobs).
    logprobs: list[dict] | None = None


@dataclass(frozen=True)
class GenerationResult:
    """A job's result; its top-level text, finish reason and completion tokens are choice 0's."""

    text: str
    finish_reason: str  # "stop" | "length" | "canceled"
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float | None
    generation_s: float
    batch_size: int = 1  # the most jobs that shared the model while this one ran
    # Only for jobs that asked (JobInput.logprobs, echo): records as core/jobs/records.py's TokenLogprob.
    logprobs: list[dict] | None = None
    prompt_logprobs: list[dict] | None = None
    prompt_text: str | None = None
    # Every choice, choice 0 first, when the job asked for n > 1; empty for one choice.
    choices: tuple[ChoiceResult, ...] = ()

    @property
    def total_completion_tokens(self) -> int:
        """The new tokens of every choice together (the job's usage)."""
        return sum(c.completion_tokens for c in self.choices) if self.choices else self.completion_tokens


@dataclass
class Progress:
    """How far one job's generation has come; its result is built from this once it ends."""

    prompt_len: int
    started_at: float
    tokens: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    finished_at: float | None = None
    stop_hit: bool = False
    canceled: bool = False
    batch_size: int = 1
    # The generated tokens' logprobs (worker/logprobs.py), one per token, for a job that asked.
    logprobs: list[TokenLogprob] | None = None
    # The prompt's tokens for an `echo` job, and their logprobs (the first None) when it asked for logprobs.
    prompt_ids: list[int] | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None

    def result(
        self, tokenizer, end_ids: list[int], stops: list[str] | None, stop_token_ids: tuple[int, ...] = ()
    ) -> GenerationResult:
        """The job's result: the text up to a stop string (and only the tokens it took), why it ended, its timings.

        `end_ids` are the ids that end this job (SamplingPlan.end_token_ids): with ignore_eos an EOS the batch
        sampled is an ordinary token, not a stop. A stop token id ends the job as EOS does: counted as a token,
        left out of the text.
        """
        tokens = list(self.tokens)
        if self.stop_hit:
            text, delivered = tokens_up_to_stop(tokenizer, tokens, stops or [])
            tokens = tokens[:delivered]
        elif tokens and tokens[-1] in stop_token_ids:
            text = tokenizer.decode(tokens[:-1], skip_special_tokens=True)
        else:
            text = tokenizer.decode(tokens, skip_special_tokens=True)
        finished_at = self.finished_at or time.perf_counter()
        # Tokens a stop string cut off lose their logprobs with them.
        logprobs = as_records(tokenizer, self.logprobs, tokens) if self.logprobs is not None else None
        return GenerationResult(
            text=text,
            finish_reason=finish_reason_of(tokens, end_ids, stop_hit=self.stop_hit, canceled=self.canceled),
            prompt_tokens=self.prompt_len,
            completion_tokens=len(tokens),
            time_to_first_token_s=(self.first_token_at - self.started_at if self.first_token_at is not None else None),
            generation_s=finished_at - self.started_at,
            batch_size=self.batch_size,
            logprobs=logprobs,
            prompt_logprobs=(
                as_records(tokenizer, self.prompt_logprobs, self.prompt_ids)
                if self.prompt_ids is not None and self.prompt_logprobs is not None
                else None
            ),
            prompt_text=tokenizer.decode(self.prompt_ids, skip_special_tokens=True) if self.prompt_ids else None,
        )


class Engine(Protocol):
    """What the worker needs of an engine, sequential or batching."""

    device: str

    def slot(self, params: JobInput, rank: int, *, alone: bool = False) -> AbstractContextManager[None]:
        """Wait until the engine can start this job (a place in the batch, or the one-at-a-time lane), and hold it.

        Waiting jobs are served by priority `rank` (lower first), then in order of arrival; `alone` runs the job
        with no other beside it.

        Raises EngineStopped or EngineDead instead of waiting on an engine that will never take the job.
        """
        ...

    def generate(
        self,
        params: JobInput,
        should_cancel: Callable[[], bool] | None = None,
        on_tokens: Callable[[list[int]], None] | None = None,
        on_logprobs: Callable[[list[TokenLogprob]], None] | None = None,
    ) -> GenerationResult:
        """Run the job; `on_tokens` gets every generated token so far after each step (it must return at once), and,
        for a job with `logprobs`, `on_logprobs` their logprobs known so far, before it."""
        ...

    def release_cached_memory(self) -> None: ...

    def shutdown(self) -> None: ...

    def alive(self) -> bool:
        """False once the engine can run no more jobs (the worker then exits)."""
        ...

    def stop_admitting(self) -> None:
        """Refuse jobs that have not started yet (EngineStopped): the worker is stopping."""
        ...


_FATAL_DEVICE_ERRORS = ("CUDA error", "device-side assert", "CUBLAS_STATUS", "cudaError", "NCCL error")


def classify_failure(failure: BaseException) -> tuple[JobError, bool]:
    """The job's `error` for an engine failure, and whether the device is beyond use (the worker must exit)."""
    import torch

    message = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
    if isinstance(failure, EngineInputError):
        return JobError(type=ErrorType.INVALID_INPUT, message=message), False
    if isinstance(failure, torch.OutOfMemoryError) or "out of memory" in message.lower():
        return JobError(type=ErrorType.OUT_OF_MEMORY, message=f"the device ran out of memory: {message}"), False
    if isinstance(failure, EngineDead) or (
        isinstance(failure, RuntimeError) and any(marker in message for marker in _FATAL_DEVICE_ERRORS)
    ):
        return JobError(type=ErrorType.DEVICE_ERROR, message=message), True
    if isinstance(failure, EngineFailed):
        return JobError(type=ErrorType.ENGINE_FAILED, message=message), False
    return JobError(type=ErrorType.ENGINE_FAILED, message=f"{type(failure).__name__}: {message}"), False


class PromptEncoder:
    """Turns a job's prompt or chat messages into token ids, refusing what the model can't hold."""

    def __init__(self, tokenizer, context_tokens: int | None) -> None:
        self.tokenizer = tokenizer
        self.context_tokens = context_tokens

    def encode(self, params: JobInput) -> list[int]:
        """Token ids of the prompt, or of the messages rendered with the tokenizer's chat template."""
        if params.messages is not None:
            if not self.tokenizer.chat_template:
                raise EngineInputError("this model's tokenizer has no chat template: send `prompt` instead")
            try:
                encoded = self.tokenizer.apply_chat_template(
                    [m.model_dump() for m in params.messages], add_generation_prompt=True, return_dict=True
                )
            except Exception as refused:  # noqa: BLE001 - templates raise what they like (e.g. "no system role")
                raise EngineInputError(f"the model's chat template refused these messages: {refused}") from None
            input_ids = list(encoded["input_ids"])
        elif params.prompt_token_ids is not None:
            input_ids = list(params.prompt_token_ids)
        else:
            input_ids = list(self.tokenizer(params.prompt)["input_ids"])
        if self.context_tokens and len(input_ids) + params.max_tokens > self.context_tokens:
            raise EngineInputError(
                f"the prompt ({len(input_ids)} tokens) plus max_tokens ({params.max_tokens}) exceeds "
                f"the model's context of {self.context_tokens} tokens"
            )
        return input_ids


def check_token_ids(params: JobInput, vocab_size: int) -> None:
    """Refuse stop and prompt token ids outside the model's vocabulary (the API checks both too, where it can read
    the model)."""
    outside = params.token_outside(vocab_size)
    if outside is not None:
        raise EngineInputError(outside[1])


def context_tokens(model) -> int | None:
    """The longest sequence the model takes, under whichever name its config uses."""
    config = model.config.get_text_config()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a generation: the model's generation config and the tokenizer's."""
    ids: set[int] = set()
    for source in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return sorted(ids)


def finish_reason_of(new_ids: list[int], eos_ids: list[int], *, stop_hit: bool, canceled: bool) -> str:
    """Why generation ended: a stop string or EOS is `stop`; a cancel is `canceled`; else the budget ran out."""
    if stop_hit or (new_ids and new_ids[-1] in eos_ids):
        return "stop"
    return "canceled" if canceled else "length"
