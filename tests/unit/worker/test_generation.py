"""What every engine shares: failures classified, prompts encoded, finish reasons."""

from __future__ import annotations

import pytest
import torch

from core.jobs.model import GenerationInput, JobInput
from worker.generation import (
    EngineDead,
    EngineFailed,
    EngineInputError,
    PromptEncoder,
    classify_failure,
    context_tokens,
    eos_token_ids,
    finish_reason_of,
)


@pytest.mark.parametrize(
    ("failure", "error_type", "fatal"),
    [
        (EngineInputError("too long"), "invalid_input", False),
        (torch.OutOfMemoryError("CUDA out of memory"), "out_of_memory", False),
        (RuntimeError("CUDA error: device-side assert triggered"), "device_error", True),
        (EngineDead("thread died"), "device_error", True),
        (EngineFailed("bad step"), "generation_error", False),
        (ValueError("odd"), "generation_error", False),
    ],
)
def test_failures_are_classified_and_only_device_errors_are_fatal(failure, error_type, fatal):
    error, is_fatal = classify_failure(failure)
    assert error.type == error_type and is_fatal is fatal
    assert error.message


def test_a_plain_failure_names_its_class_first_line_only():
    error, _ = classify_failure(ValueError("first line\nsecond"))
    assert error.message == "ValueError: first line"


def test_prompts_and_messages_encode_and_the_context_is_enforced(loaded_model):
    tokenizer, model = loaded_model.tokenizer, loaded_model.model
    encoder = PromptEncoder(tokenizer, context_tokens(model))
    ids = encoder.encode(GenerationInput(prompt="Hello there", max_tokens=4))
    assert ids and tokenizer.decode(ids, skip_special_tokens=True).strip() == "Hello there"
    if tokenizer.chat_template:
        chat = encoder.encode(GenerationInput(messages=[{"role": "user", "content": "Hi"}], max_tokens=4))
        assert len(chat) > 1
    small = PromptEncoder(tokenizer, len(ids) + 2)
    with pytest.raises(EngineInputError, match="context"):
        small.encode(GenerationInput(prompt="Hello there", max_tokens=3))


def test_a_tokenizer_without_a_chat_template_refuses_messages(loaded_model):
    class NoTemplate:
        chat_template = None

    with pytest.raises(EngineInputError, match="chat template"):
        PromptEncoder(NoTemplate(), None).encode(GenerationInput(messages=[{"role": "user", "content": "Hi"}]))


def test_model_facts_are_read_from_its_config(loaded_model):
    assert context_tokens(loaded_model.model) == loaded_model.model.config.max_position_embeddings
    assert loaded_model.tokenizer.eos_token_id in eos_token_ids(loaded_model.model, loaded_model.tokenizer)


def test_finish_reasons():
    assert finish_reason_of([5, 2], [2], stop_hit=False, canceled=False) == "stop"
    assert finish_reason_of([5], [2], stop_hit=True, canceled=False) == "stop"
    assert finish_reason_of([5], [2], stop_hit=False, canceled=True) == "canceled"
    assert finish_reason_of([5], [2], stop_hit=False, canceled=False) == "length"


def test_an_eos_sampled_under_ignore_eos_is_no_stop(loaded_model):
    """The batch can sample EOS for an ignore_eos job (nothing ends it there): the job ran to its budget."""
    from worker.generation import Progress
    from worker.sampling import SamplingPlan

    tokenizer = loaded_model.tokenizer
    eos = eos_token_ids(loaded_model.model, tokenizer)
    progress = Progress(prompt_len=2, started_at=0.0, tokens=[5, 6, eos[0]])
    plan = SamplingPlan.of(JobInput(prompt="x", max_tokens=3, ignore_eos=True))
    assert progress.result(tokenizer, plan.end_token_ids(eos), None).finish_reason == "length"
    plain = SamplingPlan.of(JobInput(prompt="x", max_tokens=3))
    assert progress.result(tokenizer, plain.end_token_ids(eos), None).finish_reason == "stop"


def test_a_stop_string_cuts_the_logprobs_with_the_tokens_and_echo_keeps_the_prompt(loaded_model):
    from worker.generation import Progress

    tokenizer = loaded_model.tokenizer
    tokens = tokenizer("Hello world. And more", add_special_tokens=False)["input_ids"]
    progress = Progress(prompt_len=2, started_at=0.0, tokens=tokens, stop_hit=True)
    progress.logprobs = [(token, -1.0, []) for token in tokens]
    progress.prompt_ids, progress.prompt_logprobs = [5, 6], [None, (6, -2.0, [(6, -2.0)])]
    result = progress.result(tokenizer, [], ["."])
    assert result.text == "Hello world"
    assert [record["token_id"] for record in result.logprobs] == tokens[: result.completion_tokens]
    assert result.prompt_logprobs[0]["logprob"] is None and result.prompt_logprobs[1]["top"][0]["token_id"] == 6
    assert result.prompt_text == tokenizer.decode([5, 6], skip_special_tokens=True)


def test_token_id_prompts_are_used_as_they_are_and_checked_against_the_vocabulary(loaded_model):
    from worker.generation import check_token_ids

    encoder = PromptEncoder(loaded_model.tokenizer, 64)
    assert encoder.encode(GenerationInput(prompt_token_ids=[5, 6, 7], max_tokens=4)) == [5, 6, 7]
    with pytest.raises(EngineInputError, match="prompt_token_ids: 99999"):
        check_token_ids(GenerationInput(prompt_token_ids=[5, 99999]), 8192)
