"""The sampling plan (worker/sampling.py): one reading of a job's input that both engines follow."""

from __future__ import annotations

import torch

from core.jobs.model import JobInput
from worker.sampling import SamplingPlan, SeededSampler

VOCAB = 1000
EOS = [2, 7]


def plan(**fields) -> SamplingPlan:
    return SamplingPlan.of(JobInput(prompt="x", **fields))


def test_temperature_zero_and_do_sample_false_are_both_greedy():
    for greedy in (plan(temperature=0.0), plan(do_sample=False, temperature=0.7, top_k=5)):
        assert greedy.greedy and not greedy.private_rng
        assert greedy.batch_request(VOCAB, EOS) == {
            "max_new_tokens": 128,
            "eos_token_id": EOS,
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": 1,
        }
        config = greedy.generation_config(EOS, pad_token_id=0)
        assert config.do_sample is False and config.temperature is None and config.top_k is None
        assert len(greedy.logits_processors("cpu", EOS, 1)) == 0


def test_a_sampled_job_spells_top_k_off_as_each_engine_needs():
    sampled = plan(temperature=0.5, top_p=0.8)
    assert not sampled.greedy and not sampled.needs_sequential_path
    # The batch has no "off": the whole vocabulary; transformers' off is 0, never the model's own default.
    assert sampled.batch_request(VOCAB, EOS) == {
        "max_new_tokens": 128,
        "eos_token_id": EOS,
        "temperature": 0.5,
        "top_p": 0.8,
        "top_k": VOCAB,
    }
    config = sampled.generation_config(EOS, pad_token_id=0)
    assert config.do_sample is True and config.temperature == 0.5 and config.top_p == 0.8 and config.top_k == 0
    assert plan(temperature=0.5, top_k=5_000).batch_request(VOCAB, EOS)["top_k"] == VOCAB
    assert plan(temperature=0.5, top_k=5).generation_config(EOS, 0).top_k == 5


def test_a_seed_samples_with_its_own_generator_on_the_sequential_path():
    seeded = plan(temperature=0.9, top_k=20, seed=3)
    assert seeded.private_rng and seeded.needs_sequential_path
    # transformers only takes the one token the seeded sampler left possible.
    config = seeded.generation_config(EOS, pad_token_id=0)
    assert config.do_sample is False and config.temperature is None
    (sampler,) = seeded.logits_processors("cpu", EOS, 1)
    assert isinstance(sampler, SeededSampler)


def test_the_same_seed_draws_the_same_tokens():
    scores = torch.randn(1, VOCAB)
    ids = torch.zeros(1, 1, dtype=torch.long)

    def draws(seed: int) -> list[int]:
        sampler = SeededSampler(plan(temperature=1.0, seed=seed), "cpu")
        return [int(sampler(ids, scores.clone()).argmax()) for _ in range(8)]

    assert draws(11) == draws(11)
    assert draws(11) != draws(12)


def test_warpers_leave_out_what_is_off():
    assert [type(w).__name__ for w in plan(temperature=0.5, top_p=1.0).warpers()] == ["TemperatureLogitsWarper"]
    assert [type(w).__name__ for w in plan(temperature=0.5, top_k=4, top_p=0.5).warpers()] == [
        "TemperatureLogitsWarper",
        "TopKLogitsWarper",
        "TopPLogitsWarper",
    ]


def test_a_greedy_seed_or_a_repetition_penalty_still_takes_the_sequential_lane():
    greedy_seeded = plan(temperature=0.0, seed=1)
    assert greedy_seeded.needs_sequential_path and not greedy_seeded.private_rng
    penalized = plan(repetition_penalty=1.2)
    assert penalized.needs_sequential_path and not penalized.private_rng
    assert penalized.generation_config(EOS, 0).repetition_penalty == 1.2


def test_ignore_eos_runs_the_whole_budget_in_both_engines():
    long = plan(max_tokens=9, ignore_eos=True)
    assert long.batch_request(VOCAB, EOS)["eos_token_id"] == -1
    assert long.generation_config(EOS, 0).min_new_tokens == 9
    assert plan(max_tokens=9).generation_config(EOS, 0).min_new_tokens is None


def test_no_rule_is_on_by_default_and_the_plan_is_as_before():
    default = plan(max_tokens=9)
    assert not default.has_token_rules and default.token_rules(EOS) == []
    assert default.batch_request(VOCAB, EOS)["eos_token_id"] == EOS
    assert default.generation_config(EOS, 0).eos_token_id == EOS
    assert len(default.logits_processors("cpu", EOS, 3)) == 0


def test_penalties_and_min_tokens_are_rules_that_stay_in_the_batch():
    from worker.request_rules import HoldEnd, Penalties

    ruled = plan(presence_penalty=0.5, frequency_penalty=1.0, min_tokens=3, stop_token_ids=[9])
    assert ruled.has_token_rules and not ruled.needs_sequential_path
    assert ruled.token_rules(EOS) == [Penalties(0.5, 1.0), HoldEnd(3, (2, 7, 9))]
    assert len(ruled.logits_processors("cpu", EOS, 3)) == 1


def test_stop_token_ids_join_the_end_ids_even_with_ignore_eos():
    assert plan(stop_token_ids=[9, 2]).batch_request(VOCAB, EOS)["eos_token_id"] == [2, 7, 9]
    ignoring = plan(max_tokens=9, ignore_eos=True, stop_token_ids=[9])
    assert ignoring.batch_request(VOCAB, EOS)["eos_token_id"] == [9]
    config = ignoring.generation_config(EOS, 0)
    assert config.eos_token_id == [9] and config.min_new_tokens is None
    # The sequential path holds EOS back for the whole budget instead, so the stop id can still end the job.
    (rules,) = ignoring.logits_processors("cpu", EOS, 3)
    assert [(rule.min_tokens, rule.end_ids) for rule in rules.rules] == [(9, (2, 7))]
