"""The sequential engine: one `generate` per job, every sampling parameter honoured exactly."""

from __future__ import annotations

import pytest

from core.jobs.model import GenerationInput
from worker.generation import EngineInputError, EngineStopped
from worker.sequential_engine import SequentialEngine


@pytest.fixture(scope="module")
def engine(loaded_model):
    return SequentialEngine(loaded_model)


def test_greedy_is_repeatable_and_ignore_eos_spends_the_whole_budget(engine):
    params = GenerationInput(prompt="Once upon", max_tokens=6, temperature=0, ignore_eos=True)
    first, second = engine.generate(params), engine.generate(params)
    assert first.text == second.text and first.completion_tokens == 6 and first.finish_reason == "length"


def test_a_seed_reproduces_a_sampled_text(engine):
    params = GenerationInput(prompt="Once upon", max_tokens=8, temperature=1.0, seed=11, ignore_eos=True)
    assert engine.generate(params).text == engine.generate(params).text


def test_a_stop_string_cuts_the_text_and_counts_only_the_tokens_before_it(engine):
    full = engine.generate(GenerationInput(prompt="Stop here", max_tokens=16, temperature=0, ignore_eos=True))
    stop = full.text.strip()[2:4] or full.text[:1]
    stopped = engine.generate(
        GenerationInput(prompt="Stop here", max_tokens=16, temperature=0, ignore_eos=True, stop=[stop])
    )
    assert stopped.finish_reason == "stop" and stopped.text == full.text[: full.text.find(stop)]
    assert stopped.completion_tokens <= full.completion_tokens


def test_cancel_and_between_tokens_are_asked_after_every_token(engine):
    turns = []
    params = GenerationInput(prompt="Cancel", max_tokens=50, temperature=0, ignore_eos=True)
    result = engine.generate(params, should_cancel=lambda: len(turns) >= 3, between_tokens=lambda: turns.append(1))
    assert result.finish_reason == "canceled" and result.completion_tokens == 4


def test_a_prompt_past_the_context_is_refused(engine):
    with pytest.raises(EngineInputError):
        engine.generate(GenerationInput(prompt="word " * 5000, max_tokens=8))


def test_the_lane_is_held_by_one_job_and_refused_once_stopping(loaded_model):
    engine = SequentialEngine(loaded_model)
    params = GenerationInput(prompt="x")
    with engine.slot(params, 3):
        assert engine.lane.taken()
    assert not engine.lane.taken() and engine.alive()
    engine.stop_admitting()
    with pytest.raises(EngineStopped), engine.slot(params, 3):
        pass


def test_penalties_min_tokens_and_stop_token_ids_on_the_sequential_path(engine):
    seen: list[list[int]] = []
    plain = GenerationInput(prompt="Rules too", max_tokens=4, temperature=0, ignore_eos=True)
    engine.generate(plain, on_tokens=lambda tokens: seen.append(list(tokens)))
    first = seen[-1][0]
    stopped = engine.generate(
        GenerationInput(prompt="Rules too", max_tokens=24, temperature=0, ignore_eos=True, stop_token_ids=[first])
    )
    assert (stopped.text, stopped.completion_tokens, stopped.finish_reason) == ("", 1, "stop")
    held = engine.generate(
        GenerationInput(prompt="Rules too", max_tokens=24, temperature=0, min_tokens=4, stop_token_ids=[first])
    )
    assert held.completion_tokens >= 4
    seeded = GenerationInput(prompt="Rules too", max_tokens=16, temperature=1.0, seed=3, frequency_penalty=2.0)
    assert engine.generate(seeded).text == engine.generate(seeded).text
    with pytest.raises(EngineInputError, match="stop_token_ids"):
        engine.generate(GenerationInput(prompt="x", stop_token_ids=[10**6]))


def test_seeded_choices_run_one_after_another_each_with_the_seed_plus_its_index(engine):
    params = GenerationInput(prompt="Once upon", max_tokens=6, temperature=1.0, seed=11, ignore_eos=True, n=3)
    whole = engine.generate(params)
    alone = [engine.generate(params.model_copy(update={"n": None, "seed": 11 + i})).text for i in range(3)]
    assert [choice.text for choice in whole.choices] == alone and whole.text == alone[0]
    assert whole.total_completion_tokens == 18 and whole.prompt_tokens == engine.generate(params).prompt_tokens
