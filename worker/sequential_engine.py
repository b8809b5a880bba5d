"""The seed's way: one `model.generate` per job, every sampling parameter honoured exactly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from core.jobs import GenerationInput
from worker.generation import (
    GenerationResult,
    PromptEncoder,
    context_tokens,
    cut_at_first_stop,
    eos_token_ids,
    finish_reason_of,
)
from worker.model_loading import LoadedModel


class _WatchOutput(StoppingCriteria):
    """Called after every new token: notes the first token's time, ends on a stop string or a cancel."""

    def __init__(self, tokenizer, prompt_len: int, stops: list[str], should_cancel: Callable[[], bool] | None):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stops = stops
        self.should_cancel = should_cancel
        self.first_token_at: float | None = None
        self.stop_hit = False
        self.canceled = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self.stops:
            text = self.tokenizer.decode(input_ids[0, self.prompt_len :], skip_special_tokens=True)
            self.stop_hit = any(stop in text for stop in self.stops)
        if self.should_cancel is not None and self.should_cancel():
            self.canceled = True
        done = self.stop_hit or self.canceled
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _SeededSampler(LogitsProcessor):
    """Samples with the job's own RNG, so a seed reproduces its text whatever else runs in the process.

    transformers samples from the global RNG, which other threads (the batch) draw from too. This processor
    applies the job's temperature/top-k/top-p, draws the token from a private generator, and leaves only that
    token possible; generation then runs greedy and picks it.
    """

    def __init__(self, params: GenerationInput, device: str) -> None:
        self.generator = torch.Generator(device=device).manual_seed(params.seed)
        warpers = [TemperatureLogitsWarper(params.temperature)]
        if params.top_k:
            warpers.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(params.top_p))
        self.warpers = LogitsProcessorList(warpers)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probabilities = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1)
        chosen = torch.multinomial(probabilities, 1, generator=self.generator)
        only_chosen = torch.full_like(scores, float("-inf"))
        return only_chosen.scatter_(1, chosen, 0.0)


class SequentialEngine:
    """Runs one generation at a time on the loaded model (a lock keeps it so across threads)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device.torch_device
        self.encoder = PromptEncoder(self.tokenizer, context_tokens(self.model))
        self.eos_token_ids = eos_token_ids(self.model, self.tokenizer)
        self._lock = threading.Lock()

    def release_cached_memory(self) -> None:
        """Hand cached CUDA blocks back to the driver, as the seed did after every job."""
        if self.device.startswith("cuda") and not self._lock.locked():
            torch.cuda.empty_cache()

    def shutdown(self) -> None:
        """Nothing runs in the background here."""

    def _generation_config(self, params: GenerationInput) -> GenerationConfig:
        # A seeded job samples in _SeededSampler; transformers itself then only takes the one token left.
        sampling = not params.is_greedy and params.seed is None
        return GenerationConfig(
            max_new_tokens=params.max_tokens,
            # ignore_eos: EOS is masked until the budget is spent, so every job has its full length.
            min_new_tokens=params.max_tokens if params.ignore_eos else None,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None,
            # 0 switches top-k off; otherwise the model's default (often 50) would apply unasked.
            top_k=(params.top_k or 0) if sampling else None,
            repetition_penalty=params.repetition_penalty,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def generate(self, params: GenerationInput, should_cancel: Callable[[], bool] | None = None) -> GenerationResult:
        """Run one job's generation; raises EngineInputError, or whatever torch raises (see classify_failure)."""
        prompt_ids = self.encoder.encode(params)
        input_ids = torch.tensor([prompt_ids], device=self.device)
        stops = params.stop or []
        watcher = _WatchOutput(self.tokenizer, len(prompt_ids), stops, should_cancel)
        processors = LogitsProcessorList()
        if params.seed is not None and not params.is_greedy:
            processors.append(_SeededSampler(params, self.device))
        with self._lock:
            started = time.perf_counter()
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=self._generation_config(params),
                    stopping_criteria=StoppingCriteriaList([watcher]),
                    logits_processor=processors,
                )
            generation_s = time.perf_counter() - started
        new_ids = output[0, len(prompt_ids) :].tolist()
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        if watcher.stop_hit:
            text = cut_at_first_stop(text, stops)
        return GenerationResult(
            text=text,
            finish_reason=finish_reason_of(
                new_ids, self.eos_token_ids, stop_hit=watcher.stop_hit, canceled=watcher.canceled
            ),
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(new_ids),
            time_to_first_token_s=(watcher.first_token_at - started) if watcher.first_token_at else None,
            generation_s=generation_s,
        )
