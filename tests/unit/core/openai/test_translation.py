"""An OpenAI request model becomes the service's generation through one method, `to_generation_input`."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.jobs.model import GenerationInput
from core.openai.translation import COMPLETIONS_DEFAULT_MAX_TOKENS, ChatCompletionRequest, CompletionRequest

HELLO = [{"role": "user", "content": "Say hello"}]


def test_a_chat_request_becomes_a_generation_input():
    request = ChatCompletionRequest.model_validate(
        {"messages": HELLO, "max_completion_tokens": 12, "stop": "\n", "seed": 7, "metadata": {"t": "1"}}
    )
    params = request.to_generation_input()
    assert isinstance(params, GenerationInput)
    assert params.messages[0].content == "Say hello" and params.max_tokens == 12
    assert params.stop == ["\n"] and params.seed == 7 and params.metadata == {"t": "1"}
    # OpenAI's sampling defaults, not the service's own.
    assert (params.temperature, params.top_p) == (1.0, 1.0)


def test_a_chat_without_a_length_leaves_it_to_the_deployment():
    params = ChatCompletionRequest.model_validate({"messages": HELLO}).to_generation_input()
    assert "max_tokens" not in params.model_fields_set


def test_a_completion_request_takes_its_one_prompt_and_16_tokens():
    params = CompletionRequest.model_validate({"prompt": ["Once"], "top_k": 5}).to_generation_input()
    assert params.prompt == "Once" and params.max_tokens == COMPLETIONS_DEFAULT_MAX_TOKENS and params.top_k == 5


def test_a_tiny_temperature_is_greedy():
    params = ChatCompletionRequest.model_validate({"messages": HELLO, "temperature": 0.001}).to_generation_input()
    assert params.temperature == 0.0


def test_the_service_rules_name_the_field_as_the_request_sent_it():
    with pytest.raises(InvalidInput) as caught:
        CompletionRequest.model_validate({"prompt": [""]}).to_generation_input()
    assert caught.value.field == "prompt.0"
    with pytest.raises(InvalidInput) as caught:
        ChatCompletionRequest.model_validate({"messages": HELLO, "seed": -1}).to_generation_input()
    assert caught.value.field == "seed"
    with pytest.raises(InvalidInput) as caught:
        ChatCompletionRequest.model_validate(
            {"messages": HELLO, "max_tokens": 3, "max_completion_tokens": 4}
        ).to_generation_input()
    assert caught.value.field == "max_completion_tokens"
