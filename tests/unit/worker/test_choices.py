"""A job's n choices: their own inputs and seeds, one after another, one result of all."""

from __future__ import annotations

from core.jobs.model import GenerationInput
from worker.choices import choice_inputs, choice_seed, combined, one_after_another
from worker.generation import GenerationResult


def result(text: str, tokens: int, **extra) -> GenerationResult:
    fields = dict(text=text, finish_reason="length", prompt_tokens=5, completion_tokens=tokens)
    return GenerationResult(**fields | dict(time_to_first_token_s=0.1, generation_s=1.0) | extra)


def test_each_choice_samples_with_the_jobs_seed_plus_its_index():
    params = GenerationInput(prompt="x", n=3, seed=2**63 - 2)
    inputs = choice_inputs(params)
    assert [i.seed for i in inputs] == [2**63 - 2, 2**63 - 1, 0]
    assert all(i.choice_count == 1 for i in inputs)
    assert choice_seed(None, 4) is None
    assert [i.seed for i in choice_inputs(GenerationInput(prompt="x", n=2))] == [None, None]


def test_a_one_choice_job_is_its_own_input_and_result():
    params = GenerationInput(prompt="x", n=1)
    assert params.n is None and choice_inputs(params) == [params]
    single = result("a", 3)
    assert combined([single], 9.0) is single and single.total_completion_tokens == 3


def test_combined_keeps_choice_0_on_top_and_lists_every_choice():
    whole = combined([result("a", 3, batch_size=2), result("b", 4, finish_reason="stop", batch_size=5)], 2.5)
    assert (whole.text, whole.completion_tokens, whole.generation_s, whole.batch_size) == ("a", 3, 2.5, 5)
    assert [(c.text, c.finish_reason, c.completion_tokens) for c in whole.choices] == [
        ("a", "length", 3),
        ("b", "stop", 4),
    ]
    assert whole.total_completion_tokens == 7 and whole.prompt_tokens == 5


def test_choices_not_begun_when_the_job_is_canceled_end_canceled_without_running():
    ran: list[int] = []

    def run_one(choice, index):
        ran.append(index)
        return result(f"choice {index}", 2)

    whole = one_after_another(run_one, GenerationInput(prompt="x", n=3), should_cancel=lambda: bool(ran))
    assert ran == [0]
    assert [c.finish_reason for c in whole.choices] == ["length", "canceled", "canceled"]
    assert whole.total_completion_tokens == 2
