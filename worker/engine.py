"""The generation engine: one loaded model, one `generate` per job, every sampling parameter honoured."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from core.jobs import GenerationInput
from worker.model_loading import LoadedModel


class EngineInputError(Exception):
    """The job's input can't be run by this model (no chat template, longer than the context)."""


class EngineOutOfMemory(Exception):
    """The device ran out of memory during this job."""


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: str  # "stop" | "length" | "canceled"
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float | None
    generation_s: float


class _WatchOutput(StoppingCriteria):
    """Called after every new token: notes the first token's time, ends on a stop string or a cancel."""

    def __init__(
        self, tokenizer, prompt_len: int, stops: list[str], should_cancel: Callable[[], bool] | None
    ):
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


def cut_at_first_stop(text: str, stops: list[str]) -> str:
    """The text before the earliest stop string."""
    positions = [text.find(stop) for stop in stops if stop in text]
    return text[: min(positions)] if positions else text


class Engine:
    """Runs one generation at a time on the loaded model."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device.torch_device
        self.context_tokens = getattr(self.model.config, "max_position_embeddings", None)
        self.eos_token_ids = self._eos_token_ids()

    def _eos_token_ids(self) -> list[int]:
        ids: set[int] = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return sorted(ids)

    def release_cached_memory(self) -> None:
        """Hand cached CUDA blocks back to the driver, as the seed did after every job."""
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def encode(self, params: GenerationInput) -> torch.Tensor:
        """Token ids of the prompt, or of the messages rendered with the tokenizer's chat template."""
        if params.messages is not None:
            if not self.tokenizer.chat_template:
                raise EngineInputError("this model's tokenizer has no chat template: send `prompt` instead")
            messages = [m.model_dump() for m in params.messages]
            encoded = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            input_ids = encoded["input_ids"]
        else:
            input_ids = self.tokenizer(params.prompt, return_tensors="pt")["input_ids"]
        prompt_len = input_ids.shape[1]
        if self.context_tokens and prompt_len + params.max_tokens > self.context_tokens:
            raise EngineInputError(
                f"the prompt ({prompt_len} tokens) plus max_tokens ({params.max_tokens}) exceeds "
                f"the model's context of {self.context_tokens} tokens"
            )
        return input_ids.to(self.device)

    def _generation_config(self, params: GenerationInput) -> GenerationConfig:
        sampling = not params.is_greedy
        return GenerationConfig(
            max_new_tokens=params.max_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None,
            # 0 switches top-k off; otherwise the model's default (often 50) would apply unasked.
            top_k=(params.top_k or 0) if sampling else None,
            repetition_penalty=params.repetition_penalty,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def generate(
        self, params: GenerationInput, should_cancel: Callable[[], bool] | None = None
    ) -> GenerationResult:
        """Run one job's generation; raises EngineInputError or EngineOutOfMemory."""
        input_ids = self.encode(params)
        prompt_len = input_ids.shape[1]
        stops = params.stop or []
        watcher = _WatchOutput(self.tokenizer, prompt_len, stops, should_cancel)
        if params.seed is not None:
            torch.manual_seed(params.seed)  # also seeds every CUDA device
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=self._generation_config(params),
                    stopping_criteria=StoppingCriteriaList([watcher]),
                )
        except torch.OutOfMemoryError as error:
            raise EngineOutOfMemory(str(error).splitlines()[0]) from error
        generation_s = time.perf_counter() - started
        new_ids = output[0, prompt_len:].tolist()
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        if watcher.stop_hit:
            finish_reason, text = "stop", cut_at_first_stop(text, stops)
        elif new_ids and new_ids[-1] in self.eos_token_ids:
            finish_reason = "stop"
        elif watcher.canceled:
            finish_reason = "canceled"
        else:
            finish_reason = "length"
        return GenerationResult(
            text=text,
            finish_reason=finish_reason,
            prompt_tokens=prompt_len,
            completion_tokens=len(new_ids),
            time_to_first_token_s=(watcher.first_token_at - started) if watcher.first_token_at else None,
            generation_s=generation_s,
        )
