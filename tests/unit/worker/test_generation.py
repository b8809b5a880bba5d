"""What every engine shares: failures classified, prompts encoded, finish reasons."""

from __future__ import annotations

import pytest
import torch

from core.jobs.model import GenerationInput
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
