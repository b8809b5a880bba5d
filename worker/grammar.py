"""The JSON grammar of a job's response_format, as a per-request logits rule (worker/request_rules.py).

One llguidance tokenizer per worker, built from the model's tokenizer at the first job that needs it; each job gets
its own matcher. The rule keeps no hook on sampling: every `apply` first feeds the matcher the tokens generated
since the last one, then masks the row to what the grammar allows next.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

import llguidance
import torch
from llguidance import LLMatcher

from worker.generation import EngineFailed, EngineInputError
from worker.grammar_tokenizer import UnsupportedTokenizer, lltokenizer_of

log = logging.getLogger("llm.worker")

_BITS = 32


class Grammars:
    """Builds each job's grammar rule against this worker's tokenizer (made once, at the first use)."""

    def __init__(self, tokenizer) -> None:
        self._hf_tokenizer = tokenizer
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._refusal: UnsupportedTokenizer | None = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        """llguidance's view of the model's tokenizer (worker/grammar_tokenizer.py), made at the first use; a
        tokenizer it can't read fails each JSON-output job as its input (the model can't honour it), once logged."""
        with self._lock:
            if self._tokenizer is None and self._refusal is None:
                try:
                    self._tokenizer = lltokenizer_of(self._hf_tokenizer)
                except UnsupportedTokenizer as refusal:
                    log.error("JSON output (response_format) can't run on this model: %s", refusal)
                    self._refusal = refusal
            if self._refusal is not None:
                raise EngineInputError(f"response_format: this model's tokenizer can't be used: {self._refusal}")
            return self._tokenizer

    def rule(self, grammar: str, end_ids: Sequence[int]) -> GrammarMask:
        """A fresh rule for one job: the text follows `grammar`, and once it is complete only `end_ids` may come."""
        return GrammarMask(LLMatcher(self.tokenizer, grammar), self.tokenizer, tuple(end_ids))


class GrammarMask:
    """Masks one request's row to the tokens its grammar allows next; stateful, so one per request."""

    def __init__(self, matcher: LLMatcher, tokenizer: llguidance.LLTokenizer, end_ids: tuple[int, ...]) -> None:
        self.matcher = matcher
        self.vocab_size = tokenizer.vocab_size
        self.grammar_eos = tokenizer.eos_token
        self.end_ids = end_ids
        self.seen = 0
        self.bitmask = torch.zeros((self.vocab_size + _BITS - 1) // _BITS, dtype=torch.int32)
        self.shifts = torch.arange(_BITS, dtype=torch.int32)
        # Why the matcher stopped with an error (None while it has not): the job's text then can't follow the
        # grammar, so the engine fails the job with it (grammar_failure) rather than answer `stop`.
        self.failure: str | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def apply(self, scores: torch.Tensor, generated: Sequence[int]) -> None:
        self._catch_up(generated)
        ends = [i for i in self.end_ids if i < scores.size(-1)]
        end_scores = scores[ends].clone()
        if not self.failed and not self.matcher.is_stopped():
            ends_allowed = self._mask(scores)
        else:
            ends_allowed = True
            scores.fill_(float("-inf"))
        if ends_allowed:
            # The grammar's end of text is the job's: any of its end ids ends it the same way, with `stop`.
            scores[ends] = end_scores

    def _mask(self, scores: torch.Tensor) -> bool:
        """Lower every token the grammar forbids next to -inf; whether the text may end here."""
        self.matcher.unsafe_compute_mask_ptr(
            self.bitmask.data_ptr(), self.bitmask.numel() * self.bitmask.element_size()
        )
        if self.matcher.is_error():
            self._give_up()
            scores.fill_(float("-inf"))
            return True
        allowed = ((self.bitmask.unsqueeze(-1) >> self.shifts) & 1).reshape(-1)[: self.vocab_size].bool()
        ends_allowed = bool(allowed[self.grammar_eos]) if self.grammar_eos < self.vocab_size else False
        allowed = allowed[: scores.size(-1)].to(scores.device)
        scores[: allowed.numel()].masked_fill_(~allowed, float("-inf"))
        # Columns past the tokenizer (logits padded wider than the vocabulary) are never a token of the text.
        scores[allowed.numel() :] = float("-inf")
        return ends_allowed

    def _catch_up(self, generated: Sequence[int]) -> None:
        """Feed the matcher the tokens generated since the last step (the one sampled after the last mask)."""
        if self.failed or len(generated) <= self.seen:
            return
        fresh = list(generated[self.seen :])
        self.seen = len(generated)
        if not self.matcher.consume_tokens(fresh):
            self._give_up()

    def _give_up(self) -> None:
        # Not expected for a schema the API compiled (a vocabulary that can't spell the JSON, a grammar past
        # llguidance's limits): the row keeps only the end ids so the request ends at once, and fails.
        self.failure = self.matcher.get_error() or "the grammar matcher stopped"
        log.warning("the grammar matcher stopped with an error (%s): the job fails", self.failure)


def grammar_failure(rules: Iterable[object]) -> EngineFailed | None:
    """The failure of a job whose grammar rule stopped with an error (its text can't follow the schema), or None."""
    for rule in rules:
        if isinstance(rule, GrammarMask) and rule.failure is not None:
            # llguidance's error spans many lines (its state, the grammar): the first says what went wrong.
            reason = (rule.failure.strip().splitlines() or [rule.failure])[0]
            return EngineFailed(f"response_format: the grammar engine stopped, the text can't follow it: {reason}")
    return None
