"""Log probabilities of the tokens a job generates (and, for `echo`, of its prompt), from the model's raw logits.

The distribution is the model's own: `log_softmax` of the logits before temperature, top-k, top-p, penalties or
any rule (vLLM's default), so a token's logprob does not depend on how the job samples.

A step's row is captured before its token is sampled; the token is known only later (the next step's
`generated_tokens`, or the finished output). Each request therefore keeps its captured rows (one, two at most)
until its token arrives, then keeps only the chosen token's logprob and its `top` alternatives: no full vocabulary
row outlives the step after the one that made it.
- The batch: `LogprobsCapture`, a processor placed first in the continuous-batching manager's list (before the
  rules processor and temperature), mapping rows to requests as `RequestRulesProcessor` does. A step with no such
  request costs one dict lookup per row.
- `model.generate`: `SequenceLogprobs`, a forward hook on the output embeddings (transformers runs its own
  processors, repetition penalty and min length included, before any processor a caller passes, so a processor
  would not see raw logits), resolved by a stopping criterion that sees the tokens so far.
- The prompt (`echo`): `prompt_logprobs`, one plain forward pass over the prompt's ids.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor

from worker.request_rules import install_first

# One token's record: its id, its logprob, and the `top` most likely ids with their logprobs (most likely first).
TokenLogprob = tuple[int, float, list[tuple[int, float]]]


@dataclass
class _Step:
    """The log_softmax rows of one step's requests that asked for logprobs, and their top alternatives."""

    logprobs: torch.Tensor  # [rows, vocab], float32
    top_values: torch.Tensor | None  # [rows, most top asked], or None when no row asked for alternatives
    top_ids: torch.Tensor | None


@dataclass
class Recorder:
    """One request's logprobs: the resolved ones, and the captured rows still waiting for their token."""

    top: int
    entries: list[TokenLogprob] = field(default_factory=list)
    # (position of the token the row chose, the step, the row in the step), in position order.
    waiting: list[tuple[int, _Step, int]] = field(default_factory=list)

    def add(self, position: int, step: _Step, row: int) -> None:
        if position == len(self.entries) + len(self.waiting):
            self.waiting.append((position, step, row))


def resolve(pairs: Sequence[tuple[Recorder, Sequence[int]]]) -> None:
    """Give each recorder's waiting rows their chosen tokens (from the tokens generated so far): one gather and one
    copy to the host per captured step."""
    work: dict[int, tuple[_Step, list[tuple[Recorder, int, int]]]] = {}
    for recorder, generated in pairs:
        while recorder.waiting and recorder.waiting[0][0] < len(generated):
            position, step, row = recorder.waiting.pop(0)
            work.setdefault(id(step), (step, []))[1].append((recorder, row, generated[position]))
    for step, items in work.values():
        rows = torch.tensor([row for _, row, _ in items], device=step.logprobs.device)
        chosen = torch.tensor([token for _, _, token in items], device=step.logprobs.device)
        chosen_logprobs = step.logprobs[rows, chosen].tolist()
        top_values = step.top_values[rows].tolist() if step.top_values is not None else None
        top_ids = step.top_ids[rows].tolist() if step.top_ids is not None else None
        for i, (recorder, _, token) in enumerate(items):
            top = list(zip(top_ids[i][: recorder.top], top_values[i][: recorder.top], strict=True)) if top_ids else []
            recorder.entries.append((token, chosen_logprobs[i], top))


def capture_step(scores: torch.Tensor, rows: list[int], tops: list[int]) -> _Step:
    """The raw log_softmax of `rows` of a step's logits and their top alternatives (as many as the most asked)."""
    index = torch.tensor(rows, device=scores.device)
    logprobs = torch.log_softmax(scores.index_select(0, index).float(), dim=-1)
    most = min(max(tops), logprobs.size(-1))
    if most == 0:
        return _Step(logprobs, None, None)
    values, ids = logprobs.topk(most, dim=-1)
    return _Step(logprobs, values, ids)


class LogprobsCapture(ContinuousBatchingLogitsProcessor):
    """The batch's capture: keeps the raw logprobs of the rows of requests that asked; changes no logits."""

    supported_kwargs: dict[str, type] = {}
    ignored_kwargs: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._recorders: dict[str, Recorder] = {}
        self._lock = threading.Lock()
        # This step's rows, in logits order: (recorder, position of the token the row will choose) or None.
        self._rows: list[tuple[Recorder, int] | None] = []

    def register(self, request_id: str, top: int) -> None:
        """Capture this request's logprobs with `top` alternatives from its next step on (call before adding it)."""
        with self._lock:
            self._recorders[request_id] = Recorder(top)

    def finish(self, request_id: str, generated: Sequence[int]) -> list[TokenLogprob] | None:
        """The request left the batch: its logprobs for the tokens it generated (None if it asked for none)."""
        with self._lock:
            recorder = self._recorders.pop(request_id, None)
            if recorder is None:
                return None
            resolve([(recorder, generated)])
        return recorder.entries[: len(generated)]

    def so_far(self, request_id: str, generated: Sequence[int]) -> list[TokenLogprob]:
        """The request's logprobs for the tokens generated so far (a copy), resolving what they make known."""
        with self._lock:
            recorder = self._recorders.get(request_id)
            if recorder is None:
                return []
            resolve([(recorder, generated)])
            return recorder.entries[: len(generated)]

    def capturing(self) -> int:
        """How many requests capture logprobs now."""
        return len(self._recorders)

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(0)

    def prepare_tensor_args(self, requests_with_new_token) -> torch.Tensor:
        """Called before each forward with the requests whose rows the logits will hold, in the same order; the
        previous step's tokens are known by now, so their rows are resolved here."""
        with self._lock:
            recorders = self._recorders
            rows: list[tuple[Recorder, int] | None] = []
            known: list[tuple[Recorder, Sequence[int]]] = []
            for request in requests_with_new_token:
                recorder = recorders.get(request.state.request_id)
                if recorder is None:
                    rows.append(None)
                    continue
                generated = request.state.generated_tokens
                known.append((recorder, generated))
                rows.append((recorder, len(generated)))
            if known:
                resolve(known)
            self._rows = rows
        return torch.zeros(len(requests_with_new_token), dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        picked = [(row, entry) for row, entry in enumerate(self._rows[: scores.size(0)]) if entry is not None]
        if not picked:
            return scores
        step = capture_step(scores, [row for row, _ in picked], [entry[0].top for _, entry in picked])
        with self._lock:
            for i, (_, (recorder, position)) in enumerate(picked):
                recorder.add(position, step, i)
        return scores


def install(manager) -> LogprobsCapture:
    """Put the capture first in a manager's logits processors (before the rules and temperature); call before
    warmup, which sizes the per-processor argument storage."""
    return install_first(manager, LogprobsCapture())


class SequenceLogprobs(StoppingCriteria):
    """One `model.generate`'s capture: a hook on the output embeddings keeps each step's raw last row (only on the
    generating thread: the batch shares the model between two of its tokens), and, called as a stopping criterion
    after each token, it resolves that row. Never stops anything."""

    def __init__(self, model, top: int, prompt_len: int, on_logprobs=None) -> None:
        self.recorder = Recorder(top)
        self.on_logprobs = on_logprobs  # gets the logprobs so far after each token
        self.prompt_len = prompt_len
        self._thread = threading.get_ident()
        self._calls = 0
        self._hook = model.get_output_embeddings().register_forward_hook(self._capture)

    def _capture(self, module, inputs, output) -> None:
        if threading.get_ident() != self._thread:
            return
        step = capture_step(output[:, -1, :], [0], [self.recorder.top])
        self.recorder.add(self._calls, step, 0)
        self._calls += 1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        resolve([(self.recorder, input_ids[0, self.prompt_len :].tolist())])
        if self.on_logprobs is not None:
            self.on_logprobs(list(self.recorder.entries))
        return torch.zeros((input_ids.shape[0],), dtype=torch.bool, device=input_ids.device)

    def close(self) -> None:
        """Capture no more (the generation ended, or failed)."""
        self._hook.remove()

    def finish(self, generated: Sequence[int]) -> list[TokenLogprob]:
        """The logprobs of the generated tokens (after close)."""
        resolve([(self.recorder, generated)])
        return self.recorder.entries[: len(generated)]


def prompt_logprobs(model, prompt_ids: list[int], top: int) -> list[TokenLogprob | None]:
    """Each prompt token's logprob given the tokens before it (the first has none: None), by one forward pass."""
    input_ids = torch.tensor([prompt_ids], device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits[0, :-1]
    recorder = Recorder(top)
    step = capture_step(logits, list(range(logits.size(0))), [top])
    for position in range(logits.size(0)):
        recorder.add(position, step, position)
    resolve([(recorder, prompt_ids[1:])])
    return [None, *recorder.entries]


def as_records(tokenizer, entries: Sequence[TokenLogprob | None], token_ids: Sequence[int]) -> list[dict]:
    """Stored records (core/jobs/records.py TokenLogprob) of `token_ids` with their logprobs (None: no logprob),
    each token as the text it decodes to alone."""
    texts: dict[int, str] = {}

    def text(token_id: int) -> str:
        if token_id not in texts:
            texts[token_id] = tokenizer.decode([token_id])
        return texts[token_id]

    records = []
    # A stop string may have cut tokens off after their logprobs were captured: only the kept tokens have records.
    for token_id, entry in zip(token_ids, entries, strict=False):
        logprob, top = (None, []) if entry is None else (entry[1], entry[2])
        records.append(
            {
                "token_id": token_id,
                "token": text(token_id),
                "logprob": logprob,
                "top": [{"token_id": i, "token": text(i), "logprob": value} for i, value in top],
            }
        )
    return records
