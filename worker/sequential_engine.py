"""One `model.generate` per job, every sampling parameter honoured exactly: MAX_BATCH_SIZE=1, and the lane of the
batching engine for what the batch can't apply per request."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from core.jobs.model import JobInput
from worker.choices import one_after_another
from worker.generation import (
    EngineStopped,
    GenerationResult,
    Progress,
    PromptEncoder,
    TokenLogprob,
    check_token_ids,
    context_tokens,
    eos_token_ids,
)
from worker.grammar import Grammars, grammar_failure
from worker.logprobs import SequenceLogprobs, prompt_logprobs
from worker.model_loading import LoadedModel
from worker.places import Places
from worker.request_rules import SequenceRulesProcessor
from worker.sampling import SamplingPlan
from worker.stop_strings import StopScanner

# How often a job waiting for the lane checks whether the worker is stopping.
SLOT_POLL_S = 0.1


class _WatchOutput(StoppingCriteria):
    """Called after every new token: notes the first token's time, ends on a stop string or a cancel, and lets
    whoever shares the model take its turn."""

    def __init__(
        self,
        progress: Progress,
        stops: StopScanner | None,
        should_cancel: Callable[[], bool] | None,
        between_tokens: Callable[[], None] | None,
        on_tokens: Callable[[list[int]], None] | None = None,
    ):
        self.progress = progress
        self.stops = stops
        self.should_cancel = should_cancel
        self.between_tokens = between_tokens
        self.on_tokens = on_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        progress = self.progress
        if progress.first_token_at is None:
            progress.first_token_at = time.perf_counter()
        if self.stops is not None or self.on_tokens is not None:
            generated = input_ids[0, progress.prompt_len :].tolist()
            if self.stops is not None:
                progress.stop_hit = self.stops.seen(generated)
            if self.on_tokens is not None:
                self.on_tokens(generated)
        if self.should_cancel is not None and self.should_cancel():
            progress.canceled = True
        done = progress.stop_hit or progress.canceled
        if not done and self.between_tokens is not None:
            self.between_tokens()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class SequentialEngine:
    """Runs one generation at a time on the loaded model: a job holds the lane (its slot) while it runs."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device.torch_device
        self.encoder = PromptEncoder(self.tokenizer, context_tokens(self.model))
        self.eos_token_ids = eos_token_ids(self.model, self.tokenizer)
        # The response_format grammars of both engines (the batch reads this one).
        self.grammars = Grammars(self.tokenizer)
        self.vocab_size = self.model.config.get_text_config().vocab_size
        self.lane = Places(1)
        self._admitting = True

    @contextlib.contextmanager
    def slot(self, params: JobInput, rank: int, *, alone: bool = False) -> Iterator[None]:
        """The one lane: jobs take it in turn, by priority `rank` (lower first), then arrival (always alone)."""
        self.lane.acquire(rank, SLOT_POLL_S, self._refuse_if_stopping)
        try:
            self._refuse_if_stopping()
            yield
        finally:
            self.lane.release()

    def _refuse_if_stopping(self) -> None:
        if not self._admitting:
            raise EngineStopped("the worker is stopping")

    def stop_admitting(self) -> None:
        """Jobs not yet started are refused from now on (EngineStopped): the worker is stopping."""
        self._admitting = False

    def release_cached_memory(self) -> None:
        """Hand cached CUDA blocks back to the driver after a job (EMPTY_CUDA_CACHE_AFTER_JOB)."""
        if self.device.startswith("cuda") and not self.lane.taken():
            torch.cuda.empty_cache()

    def shutdown(self) -> None:
        """Nothing runs in the background here."""

    def alive(self) -> bool:
        """No thread of its own can die."""
        return True

    def generate(
        self,
        params: JobInput,
        should_cancel: Callable[[], bool] | None = None,
        on_tokens: Callable[[list[int]], None] | None = None,
        between_tokens: Callable[[], None] | None = None,
        on_logprobs: Callable[[list[TokenLogprob]], None] | None = None,
    ) -> GenerationResult:
        """Run one job's generation (the caller holds its slot); raises EngineInputError, or what torch raises.

        `on_tokens` gets the tokens so far after each one (choice 0's, when the job asks for n > 1: its choices run
        one after another); `between_tokens` runs after each token: the batching engine lets its batch take a step
        there.
        """
        return one_after_another(
            lambda choice, index: self._generate_one(
                choice,
                should_cancel,
                on_tokens if index == 0 else None,
                between_tokens,
                on_logprobs if index == 0 else None,
            ),
            params,
            should_cancel,
        )

    def _generate_one(
        self,
        params: JobInput,
        should_cancel: Callable[[], bool] | None,
        on_tokens: Callable[[list[int]], None] | None,
        between_tokens: Callable[[], None] | None,
        on_logprobs: Callable[[list[TokenLogprob]], None] | None,
    ) -> GenerationResult:
        prompt_ids = self.encoder.encode(params)
        check_token_ids(params, self.vocab_size)
        input_ids = torch.tensor([prompt_ids], device=self.device)
        stops = StopScanner(self.tokenizer, params.stop) if params.stop else None
        plan = SamplingPlan.of(params)
        progress = Progress(len(prompt_ids), started_at=time.perf_counter())
        watcher = _WatchOutput(progress, stops, should_cancel, between_tokens, on_tokens)
        if params.echo:
            progress.prompt_ids = prompt_ids
        if plan.prompt_logprobs:
            progress.prompt_logprobs = prompt_logprobs(self.model, prompt_ids, plan.logprobs or 0)
        # Before the watcher: a token's logprob is resolved before the watcher hands the token on.
        capture = (
            SequenceLogprobs(self.model, plan.logprobs, len(prompt_ids), on_logprobs)
            if plan.logprobs is not None
            else None
        )
        processors = plan.logits_processors(self.device, self.eos_token_ids, len(prompt_ids), self.grammars)
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=plan.generation_config(self.eos_token_ids, self.tokenizer.pad_token_id),
                    stopping_criteria=StoppingCriteriaList([c for c in (capture, watcher) if c is not None]),
                    logits_processor=processors,
                )
        finally:
            if capture is not None:
                capture.close()
        failure = grammar_failure(rule for p in processors if isinstance(p, SequenceRulesProcessor) for rule in p.rules)
        if failure is not None:
            raise failure
        progress.finished_at = time.perf_counter()
        progress.tokens = output[0, len(prompt_ids) :].tolist()
        if capture is not None:
            progress.logprobs = capture.finish(progress.tokens)
        return progress.result(self.tokenizer, plan.end_token_ids(self.eos_token_ids), params.stop, plan.stop_token_ids)
