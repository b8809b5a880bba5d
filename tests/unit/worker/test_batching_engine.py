"""The continuous-batching engine on the demo model: several jobs share it, each gets its own exact result."""

from __future__ import annotations

import threading

import pytest

from core.jobs.model import GenerationInput
from worker.batching_engine import BatchingEngine
from worker.generation import EngineStopped
from worker.sampling import SamplingPlan


def greedy(prompt: str, max_tokens: int = 8, **extra) -> GenerationInput:
    return GenerationInput(prompt=prompt, max_tokens=max_tokens, temperature=0, ignore_eos=True, **extra)


def run_together(engine: BatchingEngine, inputs: list[GenerationInput]) -> list:
    results: list = [None] * len(inputs)

    def run(index: int) -> None:
        with engine.slot(inputs[index], 3):
            results[index] = engine.generate(inputs[index])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_several_prompts_share_the_batch_and_each_gets_its_full_length(batching_engine):
    results = run_together(batching_engine, [greedy(f"Prompt number {n}", 6 + n) for n in range(3)])
    assert [result.completion_tokens for result in results] == [6, 7, 8]
    assert all(result.finish_reason == "length" and result.prompt_tokens > 0 for result in results)
    assert max(result.batch_size for result in results) >= 2
    assert all(result.time_to_first_token_s is not None and result.generation_s > 0 for result in results)


def test_greedy_text_is_the_same_alone_or_in_a_batch(batching_engine):
    alone = run_together(batching_engine, [greedy("Repeat after me")])[0]
    together = run_together(batching_engine, [greedy("Repeat after me"), greedy("Something else entirely")])[0]
    assert together.text == alone.text


def test_a_stop_string_ends_the_text_before_it(batching_engine):
    full = run_together(batching_engine, [greedy("Stop me", 16)])[0].text
    stop = full.strip()[2:4] or full[:1]
    result = run_together(batching_engine, [greedy("Stop me", 16, stop=[stop])])[0]
    assert result.finish_reason == "stop"
    assert result.text == full[: full.find(stop)] and stop not in result.text


def test_on_tokens_sees_the_tokens_grow_to_the_result(batching_engine):
    seen: list[list[int]] = []
    params = greedy("Stream me", 6)
    with batching_engine.slot(params, 3):
        result = batching_engine.generate(params, on_tokens=lambda tokens: seen.append(list(tokens)))
    assert seen and len(seen[-1]) == result.completion_tokens == 6
    assert all(len(a) <= len(b) for a, b in zip(seen, seen[1:], strict=False))


def test_a_cancel_ends_the_job_with_its_partial_text(batching_engine):
    params = GenerationInput(prompt="Cancel me", max_tokens=2000, ignore_eos=True, temperature=0)
    with batching_engine.slot(params, 3):
        result = batching_engine.generate(params, should_cancel=lambda: True)
    assert result.finish_reason == "canceled" and result.completion_tokens < 2000


def test_a_seeded_job_runs_in_the_sequential_lane_and_reproduces_its_text(batching_engine):
    params = GenerationInput(prompt="Seeded", max_tokens=8, temperature=1.0, seed=7, ignore_eos=True)
    assert SamplingPlan.of(params).needs_sequential_path and not SamplingPlan.of(greedy("x")).needs_sequential_path
    first, second = run_together(batching_engine, [params, params])
    assert first.text == second.text and first.completion_tokens == 8


def test_alone_takes_every_place_of_the_batch(batching_engine):
    with batching_engine.slot(greedy("alone"), 3, alone=True):
        assert batching_engine._batch_places.taken()
        assert batching_engine._batch_places._free == 0
    assert not batching_engine._batch_places.taken()


def test_a_stopping_engine_refuses_new_jobs(loaded_model, demo_model_dir, tmp_path):
    from tests.unit.worker.conftest import cpu_settings

    engine = BatchingEngine(loaded_model, cpu_settings(demo_model_dir, tmp_path))
    try:
        assert engine.alive()
        engine.stop_admitting()
        with pytest.raises(EngineStopped), engine.slot(greedy("late"), 3):
            pass
    finally:
        engine.shutdown()
    with pytest.raises(EngineStopped):
        engine.generate(greedy("after shutdown"))


def generated_tokens(engine, params: GenerationInput) -> tuple[list[int], object]:
    """The job's tokens (as the engine streams them) and its result."""
    seen: list[list[int]] = [[]]
    with engine.slot(params, 3):
        result = engine.generate(params, on_tokens=lambda tokens: seen.append(list(tokens)))
    return seen[-1], result


def test_the_largest_frequency_penalty_repeats_no_token(batching_engine):
    plain, _ = generated_tokens(batching_engine, greedy("Say it again and again", 32))
    assert len(set(plain)) < len(plain)  # the demo model repeats itself when left alone
    penalized, result = generated_tokens(
        batching_engine, greedy("Say it again and again", 32, frequency_penalty=2.0, presence_penalty=2.0)
    )
    assert len(penalized) == 32 and len(set(penalized)) == 32 and result.finish_reason == "length"


def test_a_stop_token_id_ends_the_job_with_stop_and_min_tokens_holds_it_back(batching_engine):
    plain, _ = generated_tokens(batching_engine, greedy("Stop token", 12))
    first = plain[0]
    ended, result = generated_tokens(batching_engine, greedy("Stop token", 12, stop_token_ids=[first]))
    assert ended == [first] and result.finish_reason == "stop" and result.text == ""
    # ignore_eos=false: EOS and the stop id may end it, but not before min_tokens.
    held, result = generated_tokens(
        batching_engine,
        GenerationInput(prompt="Stop token", max_tokens=12, temperature=0, min_tokens=5, stop_token_ids=[first]),
    )
    assert len(held) >= 5 and first not in held[:4]
    assert result.finish_reason == ("stop" if len(held) < 12 else "length")


def test_a_stop_token_id_outside_the_vocabulary_is_refused_as_bad_input(batching_engine):
    from worker.generation import EngineInputError

    with pytest.raises(EngineInputError, match="stop_token_ids: 99999 is not a token"):
        batching_engine.generate(greedy("x", stop_token_ids=[99999]))


def test_two_jobs_with_different_rules_share_one_batch_step_and_each_gets_its_own(batching_engine):
    rules = batching_engine._factory.request_rules
    steps: list[set[str]] = []
    prepare = rules.prepare_tensor_args

    def watch(requests):
        args = prepare(requests)
        steps.append({request.state.request_id for request, row in zip(requests, rules._rows, strict=True) if row})
        return args

    penalized = greedy("Shared step", 24, frequency_penalty=2.0)
    present = greedy("Shared step", 24, presence_penalty=-2.0, min_tokens=3)
    alone = [run_together(batching_engine, [params])[0].text for params in (penalized, present)]
    rules.prepare_tensor_args = watch
    try:
        together = run_together(batching_engine, [penalized, present, greedy("Shared step", 24)])
    finally:
        del rules.prepare_tensor_args
    assert [result.text for result in together[:2]] == alone
    assert together[2].text != alone[0] and together[2].text != alone[1]
    assert any(len(step) == 2 for step in steps)  # both ruled rows in one step
    assert rules.ruled() == 0


def test_batch_and_sequential_agree_on_greedy_jobs_with_penalties(batching_engine):
    for params in (
        greedy("Agree on this", 20, frequency_penalty=1.5),
        greedy("Agree on this", 20, presence_penalty=1.0, frequency_penalty=-0.5),
        GenerationInput(prompt="Agree on this", max_tokens=20, temperature=0, min_tokens=6, presence_penalty=0.7),
    ):
        batched = run_together(batching_engine, [params])[0]
        sequential = batching_engine.sequential.generate(params)
        assert (batched.text, batched.completion_tokens) == (sequential.text, sequential.completion_tokens)


def test_where_steps_are_not_eager_a_job_with_rules_takes_the_sequential_lane(batching_engine, monkeypatch, tmp_path):
    from tests.unit.worker.conftest import cpu_settings
    from worker.batching_manager import ManagerFactory

    assert batching_engine._factory.with_request_rules  # the CPU engine runs its steps eagerly
    compiled = cpu_settings(batching_engine.model.name_or_path, tmp_path, engine_compile_level=1)
    factory = ManagerFactory(
        batching_engine.model, batching_engine.tokenizer, compiled, eos_token_ids=[0], context_tokens=64
    )
    assert not factory.with_request_rules and "use_async_batching" not in factory.batching_config_values
    monkeypatch.setattr(batching_engine._factory, "request_rules", None)
    params = greedy("Lane", 6, frequency_penalty=1.0)
    with batching_engine.slot(params, 3):
        assert batching_engine.sequential.lane.taken()
        result = batching_engine.generate(params)
    assert result.text == batching_engine.sequential.generate(params).text


def test_a_job_with_n_choices_holds_n_places_and_at_most_the_batch(batching_engine):
    places = batching_engine._batch_places
    with batching_engine.slot(greedy("three", n=3), 3):
        assert places._free == places.count - 3
    with batching_engine.slot(greedy("many", n=places.count + 2), 3):
        assert places._free == 0
    assert not places.taken()


def test_more_choices_than_places_run_in_waves_and_greedy_choices_agree(batching_engine):
    count = batching_engine._batch_places.count + 2
    single = run_together(batching_engine, [greedy("Waves of choices", 5)])[0]
    whole = run_together(batching_engine, [greedy("Waves of choices", 5, n=count)])[0]
    assert len(whole.choices) == count and {choice.text for choice in whole.choices} == {single.text}
    assert whole.total_completion_tokens == 5 * count and whole.prompt_tokens == single.prompt_tokens


def test_each_choice_applies_its_rules_to_its_own_tokens(batching_engine):
    penalised = greedy("Penalties per choice", 12, frequency_penalty=1.5)
    single = run_together(batching_engine, [penalised])[0]
    whole = run_together(batching_engine, [penalised.model_copy(update={"n": 3})])[0]
    assert [choice.text for choice in whole.choices] == [single.text] * 3


def test_a_cancel_ends_every_choice_and_later_waves_never_start(batching_engine):
    params = GenerationInput(prompt="Cancel all", max_tokens=2000, ignore_eos=True, temperature=0, n=6)
    with batching_engine.slot(params, 3):
        whole = batching_engine.generate(params, should_cancel=lambda: True)
    assert [choice.finish_reason for choice in whole.choices] == ["canceled"] * 6
    assert all(choice.completion_tokens == 0 for choice in whole.choices[4:])


def test_the_choices_are_one_request_forked_so_the_prompt_is_prefilled_once(batching_engine, monkeypatch):
    added: list[int] = []
    add_request = batching_engine.manager.add_request

    def counting(prompt_ids, **kwargs):
        added.append(batching_engine.manager.num_return_sequences)
        return add_request(prompt_ids, **kwargs)

    monkeypatch.setattr(batching_engine.manager, "add_request", counting)
    whole = run_together(batching_engine, [greedy("One prefill, three choices", 4, n=3)])[0]
    assert added == [3] and len(whole.choices) == 3
    assert batching_engine.manager.num_return_sequences == 1
    # A one-token prompt can't be forked: its choices are separate requests.
    params = greedy("x", 4, n=2)
    requests = batching_engine._add_choices(params, SamplingPlan.of(params), [5], None, (None, None), 2)
    assert added[1:] == [1, 1] and len(requests) == 2
    for _, pending in requests:
        assert pending.done.wait(30) and len(pending.tokens) == 4


def test_a_stop_string_ends_only_its_own_choice(batching_engine):
    params = GenerationInput(prompt="Stop per choice", max_tokens=30, temperature=1.0, ignore_eos=True, n=8, stop=["e"])
    whole = run_together(batching_engine, [params])[0]
    assert all("e" not in choice.text for choice in whole.choices)
    assert all(c.finish_reason == "stop" or c.completion_tokens == 30 for c in whole.choices)
    # Sampled choices meet the stop at their own token (12 tries of 6 choices here: never all at the same one).
    assert len({choice.completion_tokens for choice in whole.choices}) > 1
