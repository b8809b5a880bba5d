"""Per-request logits rules: each job's own edits to its own row of the logits, seeing its own generated tokens.

A rule is anything with `apply(scores, generated)`: it edits one request's 1-D row of logits in place, given every
token that request has generated so far (not its prompt). Both engines run the same rules:
- the batch, through `RequestRulesProcessor`, one processor in transformers' continuous-batching list that maps
  each logits row to its request id (the rows of a step are the requests `prepare_tensor_args` gets, in order) and
  looks the request's rules up by id; a batch with no ruled request costs one dict lookup per row and step;
- `model.generate` on the sequential path, through `SequenceRulesProcessor`.

Extending it:
- a grammar mask is one more rule, stateful per request: on each `apply` it feeds the matcher the tokens of
  `generated` it has not seen yet (so it needs no hook on sampling), then masks the row with the matcher's bitmask;
  it goes last in the job's rules, after the penalties.
- the raw-logprobs capture (worker/logprobs.py) is a second processor of the same kind, inserted before this one
  (so before temperature), with the same row-to-request mapping: it keeps each asking row's `log_softmax`; the
  sampled token of step k is `generated[k]` at step k + 1 (or in the finished output), so it needs no hook on
  sampling.

The rules run as Python per step: the batch installs them only where steps run eagerly (no CUDA graphs, no
compile, no async batching, which would prepare a step before the previous token is known); elsewhere a job with
rules takes the sequential lane (see BatchingEngine).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
from transformers import LogitsProcessor
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor

_Processor = TypeVar("_Processor", bound=ContinuousBatchingLogitsProcessor)


class TokenRule(Protocol):
    """One edit of one request's logits row, from the tokens it generated so far."""

    def apply(self, scores: torch.Tensor, generated: Sequence[int]) -> None:
        """Edit `scores` (the request's row, shape [vocab]) in place."""
        ...


@dataclass(frozen=True)
class Penalties:
    """OpenAI's presence and frequency penalties, on the raw logits (before temperature)."""

    presence: float
    frequency: float

    def apply(self, scores: torch.Tensor, generated: Sequence[int]) -> None:
        if not generated:
            return
        seen = torch.tensor(generated, dtype=torch.long, device=scores.device)
        # Ids past the row (a tokenizer larger than the logits) can't be penalised: there is no logit to lower.
        counts = torch.bincount(seen, minlength=scores.size(-1))[: scores.size(-1)].to(scores.dtype)
        scores -= self.frequency * counts + self.presence * (counts > 0).to(scores.dtype)


@dataclass(frozen=True)
class HoldEnd:
    """The ids that would end the job (EOS, stop token ids) are impossible until `min_tokens` are generated."""

    min_tokens: int
    end_ids: tuple[int, ...]

    def apply(self, scores: torch.Tensor, generated: Sequence[int]) -> None:
        if len(generated) < self.min_tokens:
            scores[[i for i in self.end_ids if i < scores.size(-1)]] = float("-inf")


class RequestRulesProcessor(ContinuousBatchingLogitsProcessor):
    """The batch's processor: applies each request's rules to its own row; requests without rules are untouched."""

    # No `add_request` keyword belongs to it: rules are registered by request id instead.
    supported_kwargs: dict[str, type] = {}
    ignored_kwargs: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._rules: dict[str, tuple[TokenRule, ...]] = {}
        self._lock = threading.Lock()
        # This step's rows, in logits order: each one's rules and its generated tokens (None: no rules).
        self._rows: list[tuple[tuple[TokenRule, ...], Sequence[int]] | None] = []

    def register(self, request_id: str, rules: Sequence[TokenRule]) -> None:
        """Apply `rules` to this request's rows from its next step on (call before adding the request)."""
        with self._lock:
            self._rules[request_id] = tuple(rules)

    def forget(self, request_id: str) -> None:
        """The request left the batch (or never joined it)."""
        with self._lock:
            self._rules.pop(request_id, None)

    def ruled(self) -> int:
        """How many requests have rules now."""
        return len(self._rules)

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(0)

    def prepare_tensor_args(self, requests_with_new_token) -> torch.Tensor:
        """Called before each forward with the requests whose rows the logits will hold, in the same order."""
        with self._lock:
            rules = self._rules
            self._rows = [
                (found, request.state.generated_tokens)
                if (found := rules.get(request.state.request_id)) is not None
                else None
                for request in requests_with_new_token
            ]
        # The manager wants one int32 per row; the rules travel in self._rows instead.
        return torch.zeros(len(requests_with_new_token), dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        for row, entry in enumerate(self._rows[: scores.size(0)]):
            if entry is not None:
                rules, generated = entry
                for rule in rules:
                    rule.apply(scores[row], generated)
        return scores


class SequenceRulesProcessor(LogitsProcessor):
    """`model.generate`'s processor for one job: its rules on its one row, generated tokens counted after the
    prompt."""

    def __init__(self, rules: Sequence[TokenRule], prompt_len: int) -> None:
        self.rules = tuple(rules)
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(scores.size(0)):
            generated = input_ids[row, self.prompt_len :].tolist()
            for rule in self.rules:
                rule.apply(scores[row], generated)
        return scores


def install(manager) -> RequestRulesProcessor:
    """Add the rules processor to a manager's logits processors, first (before temperature); call before warmup,
    which sizes the per-processor argument storage."""
    return install_first(manager, RequestRulesProcessor())


def install_first(manager, processor: _Processor) -> _Processor:
    """Put a per-request processor first in a manager's logits processors (it takes one argument row per step)."""
    processors = manager.logit_processor
    processors.logits_processor.insert(0, processor)
    processors.tensors_required += 1
    processors._retrieve_processors_kwargs()
    processors.do_processing = True
    return processor
