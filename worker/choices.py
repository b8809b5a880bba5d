"""A job's n samples of one prompt (`n`): each choice's own input, the choices run one after another (the
sequential lane), and one result made of all of them.

In the batch each choice is a request of its own (worker/batching_engine.py); in the sequential lane the choices
run one after another, each with its own seed: the job's seed plus the choice's index (modulo 2**63), so choice 0
of a seeded job is the same text as the job with n=1 and the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from core.jobs.model import JobInput
from worker.generation import ChoiceResult, GenerationResult

_SEED_RANGE = 2**63


def choice_seed(seed: int | None, index: int) -> int | None:
    """The seed choice `index` samples with: the job's own plus the index (None stays None)."""
    return None if seed is None else (seed + index) % _SEED_RANGE


def choice_inputs(params: JobInput) -> list[JobInput]:
    """Each choice's own input: one sample (n unset) with its own seed; a one-choice job is its own input. The
    prompt's `echo` (and, with logprobs, its forward pass over the prompt) is choice 0's alone: the job's result
    keeps only that copy (combined)."""
    if params.choice_count == 1:
        return [params]
    return [
        params.model_copy(
            update={"n": None, "seed": choice_seed(params.seed, index)} | ({"echo": None} if index else {})
        )
        for index in range(params.choice_count)
    ]


def not_started(prompt_tokens: int) -> GenerationResult:
    """A choice the job was canceled before it began: no text, `canceled`."""
    return GenerationResult(
        text="",
        finish_reason="canceled",
        prompt_tokens=prompt_tokens,
        completion_tokens=0,
        time_to_first_token_s=None,
        generation_s=0.0,
    )


def combined(results: list[GenerationResult], generation_s: float) -> GenerationResult:
    """One result of every choice's, in choice order: choice 0's text and timing on top, every choice listed,
    the whole job's time; a single result is returned as it is."""
    if len(results) == 1:
        return results[0]
    return replace(
        results[0],
        generation_s=generation_s,
        batch_size=max(r.batch_size for r in results),
        choices=tuple(ChoiceResult(r.text, r.finish_reason, r.completion_tokens, r.logprobs) for r in results),
    )


def one_after_another(
    run_one: Callable[[JobInput, int], GenerationResult],
    params: JobInput,
    should_cancel: Callable[[], bool] | None,
) -> GenerationResult:
    """Run the job's choices in turn with `run_one(choice_input, index)`; once the job is canceled, the choices
    not yet begun end `canceled` without running."""
    started = time.perf_counter()
    results: list[GenerationResult] = []
    for index, choice in enumerate(choice_inputs(params)):
        if results and should_cancel is not None and should_cancel():
            results.append(not_started(results[0].prompt_tokens))
        else:
            results.append(run_one(choice, index))
    return combined(results, time.perf_counter() - started)
