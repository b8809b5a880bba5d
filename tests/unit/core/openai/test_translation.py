"""OpenAI request bodies as the service's generations: each request model becomes a generation through one method,
`to_generation_input`; fields that change nothing here are accepted, the rest refused by name."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.jobs.model import GenerationInput
from core.openai.translation import (
    COMPLETIONS_DEFAULT_MAX_TOKENS,
    MAX_PROMPTS,
    ChatCompletionRequest,
    CompletionRequest,
    Endpoint,
    parse_openai_request,
)

CHAT = Endpoint.CHAT_COMPLETIONS
TEXT = Endpoint.COMPLETIONS
HELLO = [{"role": "user", "content": "Say hello"}]


def chat(**fields):
    return parse_openai_request(CHAT, {"model": "gpt-4o-mini", "messages": HELLO, **fields})


def sent(request) -> dict:
    """The generation's fields the request set (as they would be stored)."""
    return request.params.model_dump(mode="json", exclude_unset=True)


def refused(endpoint: Endpoint, body: dict) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_openai_request(endpoint, body)
    return caught.value


def test_a_chat_request_becomes_a_generation_the_service_validates():
    request = chat(
        max_completion_tokens=12, temperature=0.5, top_p=0.8, stop="\n", seed=7, stream=True,
        stream_options={"include_usage": True}, metadata={"ticket": "T-1"},
    )  # fmt: skip
    assert sent(request) == {
        "messages": HELLO,
        "max_tokens": 12,
        "temperature": 0.5,
        "top_p": 0.8,
        "stop": ["\n"],
        "seed": 7,
        "metadata": {"ticket": "T-1"},
    }
    assert request.stream and request.include_usage and request.requested_model == "gpt-4o-mini"


def test_openai_defaults_and_names():
    request = chat()
    # OpenAI's sampling defaults; no max_tokens, so the service's default (within its limit) applies.
    assert sent(request) == {"messages": HELLO, "temperature": 1.0, "top_p": 1.0}
    assert not request.stream and not request.include_usage
    assert chat(max_tokens=5).params.max_tokens == 5
    assert chat(max_tokens=5, max_completion_tokens=5).params.max_tokens == 5
    # A tiny temperature means greedy (the service refuses sampling below 0.01), and model may be left out.
    assert parse_openai_request(CHAT, {"messages": HELLO, "temperature": 0.001}).params.temperature == 0.0
    # `developer` is a system turn; text parts are joined; `name` is ignored.
    request = chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "name": "ann", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ]
    )
    assert request.params.messages[0].role == "system" and request.params.messages[0].content == "Be brief."
    assert request.params.messages[1].content == "a\nb"


def test_a_completion_request_takes_one_prompt_and_16_tokens_by_default():
    request = parse_openai_request(TEXT, {"model": "x", "prompt": ["Once"], "top_k": 5, "ignore_eos": True})
    assert sent(request) == {
        "prompt": "Once",
        "max_tokens": COMPLETIONS_DEFAULT_MAX_TOKENS,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 5,
        "ignore_eos": True,
    }
    assert parse_openai_request(TEXT, {"prompt": "Once", "echo": False, "best_of": 1, "logprobs": 0}).params.prompt
    assert refused(TEXT, {"prompt": []}).field == "prompt"
    assert refused(TEXT, {"prompt": ["a"] * (MAX_PROMPTS + 1)}).field == "prompt"
    assert refused(TEXT, {"prompt": [1, -2]}).field.startswith("prompt")
    assert refused(TEXT, {"prompt": "a", "suffix": "z"}).field == "suffix"
    assert refused(TEXT, {"messages": HELLO}).field in ("prompt", "messages")


def test_a_completion_request_with_several_prompts_is_a_generation_per_prompt():
    request = parse_openai_request(TEXT, {"prompt": ["Once", "Twice"], "max_tokens": 3, "logprobs": 1, "n": 2})
    assert [(params.prompt, params.max_tokens, params.logprobs, params.n) for params in request.generations] == [
        ("Once", 3, 1, 2),
        ("Twice", 3, 1, 2),
    ]
    ids = parse_openai_request(TEXT, {"prompt": [[1, 2], [3]]})
    assert [params.prompt_token_ids for params in ids.generations] == [[1, 2], [3]]
    with pytest.raises(ValueError, match="2 generations"):
        _ = ids.params  # a caller that handles one generation can't take the first of several by mistake
    # Each prompt's fault names it as sent.
    assert refused(TEXT, {"prompt": ["ok", ""]}).field == "prompt.1"
    assert refused(TEXT, {"prompt": [[1], []]}).field == "prompt.1"
    streamed = parse_openai_request(TEXT, {"prompt": ["a", "b"], "stream": True})
    assert streamed.stream and len(streamed.generations) == 2


def test_penalties_min_tokens_and_stop_token_ids_are_honoured_on_both_endpoints():
    rules = {"frequency_penalty": 0.5, "presence_penalty": -1, "min_tokens": 3, "stop_token_ids": [7, 9]}
    for params in (chat(**rules).params, parse_openai_request(TEXT, {"prompt": "Once", **rules}).params):
        assert (params.frequency_penalty, params.presence_penalty) == (0.5, -1.0)
        assert (params.min_tokens, params.stop_token_ids) == (3, [7, 9])


def test_fields_that_change_nothing_here_are_accepted_and_ignored():
    neutral = {
        "n": 1,
        "logprobs": False,
        "top_logprobs": 0,
        "frequency_penalty": 0,
        "presence_penalty": 0.0,
        "logit_bias": {},
        "user": "u-1",
        "store": False,
        "service_tier": "auto",
        "parallel_tool_calls": True,
        "tools": [],
        "tool_choice": "none",
        "response_format": {"type": "text"},
        "modalities": ["text"],
        "prompt_cache_key": "k",
        "safety_identifier": "s",
    }
    assert chat(**neutral).params == chat().params


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"n": 17}, "n", "less than or equal to 16"),
        ({"n": 0}, "n", "greater than or equal to 1"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "not supported"),
        ({"tool_choice": "required"}, "tool_choice", "none"),
        ({"response_format": {"type": "xml"}}, "response_format.type", "json_schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format", ""),
        ({"response_format": {"type": "json_object"}, "stop": "}"}, "response_format", "stop"),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "bias"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "20"),
        ({"top_logprobs": 2}, "top_logprobs", "logprobs: true"),
        ({"frequency_penalty": 2.5}, "frequency_penalty", "2"),
        ({"presence_penalty": -3}, "presence_penalty", "-2"),
        ({"min_tokens": 9, "max_tokens": 8}, "min_tokens", "at most max_tokens (8)"),
        ({"stop_token_ids": [-1]}, "stop_token_ids", "0"),
        ({"stop_token_ids": list(range(65))}, "stop_token_ids", "64"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio", "not supported"),
        ({"modalities": ["text", "audio"]}, "modalities", "text"),
        ({"made_up_field": 1}, "made_up_field", "not supported"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "stream: true"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, "max_completion_tokens", "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "greater than or equal to 1"),
        ({"temperature": 2.5}, "temperature", "2"),
        ({"temperature": "hot"}, "temperature", ""),
        ({"stop": [""]}, "stop", "1 to 256"),
        ({"seed": -1}, "seed", "0"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c"}]}, "messages.0.role", "tool"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages.0", ""),
        ({"messages": []}, "messages", ""),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "16"),
    ],
)
def test_what_cant_be_honoured_is_refused_by_name(fields, field, says):
    error = refused(CHAT, {"messages": HELLO, **fields})
    assert error.field is not None and error.field.startswith(field), error.message
    assert error.message.startswith(f"{error.field}: ") and says in error.message


def test_a_json_response_format_becomes_the_jobs_own_on_both_endpoints():
    schema_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}, "strict": True}}
    assert sent(chat(response_format=schema_format))["response_format"] == schema_format
    completion = parse_openai_request(TEXT, {"prompt": "x", "response_format": {"type": "json_object"}})
    assert sent(completion)["response_format"] == {"type": "json_object"}


def test_bodies_that_are_not_objects_or_carry_unsafe_text_are_refused():
    assert refused(CHAT, ["not", "an", "object"]).message == "the body must be a JSON object"
    assert refused(CHAT, {"messages": [{"role": "user", "content": "a\x00b"}]}).field == "messages.0.content"


def test_stream_options_say_how_the_answer_streams():
    request = chat(stream=True, stream_options={"continuous_usage_stats": True})
    assert request.stream and request.continuous_usage and not request.include_usage
    assert request.endpoint is CHAT and request.requested_model == "gpt-4o-mini"
    assert not chat(stream=True).include_usage and not chat(stream=True).continuous_usage


def test_sampling_extensions_travel_to_the_generation():
    request = chat(top_k=40, repetition_penalty=1.2, ignore_eos=True, stop=["a", "b"])
    assert (request.params.top_k, request.params.repetition_penalty) == (40, 1.2)
    assert request.params.ignore_eos is True and request.params.stop == ["a", "b"]
    assert refused(CHAT, {"messages": HELLO, "top_k": 0}).field == "top_k"
    assert refused(CHAT, {"messages": HELLO, "repetition_penalty": 0}).field == "repetition_penalty"


def test_a_chat_request_model_becomes_a_generation_input():
    request = ChatCompletionRequest.model_validate(
        {"messages": HELLO, "max_completion_tokens": 12, "stop": "\n", "seed": 7, "metadata": {"t": "1"}}
    )
    [params] = request.to_generation_inputs()
    assert isinstance(params, GenerationInput)
    assert params.messages[0].content == "Say hello" and params.max_tokens == 12
    assert params.stop == ["\n"] and params.seed == 7 and params.metadata == {"t": "1"}
    # OpenAI's sampling defaults, not the service's own.
    assert (params.temperature, params.top_p) == (1.0, 1.0)


def test_a_chat_without_a_length_leaves_it_to_the_deployment():
    [params] = ChatCompletionRequest.model_validate({"messages": HELLO}).to_generation_inputs()
    assert "max_tokens" not in params.model_fields_set


def test_a_completion_request_model_takes_its_one_prompt_and_16_tokens():
    [params] = CompletionRequest.model_validate({"prompt": ["Once"], "top_k": 5}).to_generation_inputs()
    assert params.prompt == "Once" and params.max_tokens == COMPLETIONS_DEFAULT_MAX_TOKENS and params.top_k == 5


def test_the_service_rules_name_the_field_as_the_request_sent_it():
    with pytest.raises(InvalidInput) as caught:
        CompletionRequest.model_validate({"prompt": [""]}).to_generation_inputs()
    assert caught.value.field == "prompt.0"
    with pytest.raises(InvalidInput) as caught:
        ChatCompletionRequest.model_validate({"messages": HELLO, "seed": -1}).to_generation_inputs()
    assert caught.value.field == "seed"
    with pytest.raises(InvalidInput) as caught:
        ChatCompletionRequest.model_validate(
            {"messages": HELLO, "max_tokens": 3, "max_completion_tokens": 4}
        ).to_generation_inputs()
    assert caught.value.field == "max_completion_tokens"


def test_n_becomes_the_jobs_choice_count_and_one_is_the_default():
    assert chat(n=4).params.n == 4 and chat(n=4).params.choice_count == 4
    assert chat(n=1).params == chat().params
    assert chat(n=1, stream=True).params.choice_count == 1 and chat(n=3, stream=True).params.n == 3


def test_logprobs_are_asked_with_their_number_of_alternatives_on_both_endpoints():
    assert chat(logprobs=True, top_logprobs=5).params.logprobs == 5
    assert chat(logprobs=True).params.logprobs == 0
    assert chat(logprobs=False).params.logprobs is None
    text = parse_openai_request(TEXT, {"prompt": "Once", "logprobs": 20, "echo": True}).params
    assert (text.logprobs, text.echo) == (20, True)
    assert refused(TEXT, {"prompt": "a", "logprobs": 21}).field == "logprobs"
    assert refused(TEXT, {"prompt": "a", "logprobs": -1}).field == "logprobs"


def test_a_completion_prompt_may_be_token_ids_used_as_they_are():
    lm_eval_body = {"prompt": [[5, 6, 7]], "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0, "seed": 1}
    for prompt in ([5, 6, 7], [[5, 6, 7]]):
        params = parse_openai_request(TEXT, lm_eval_body | {"prompt": prompt}).params
        assert (params.prompt, params.prompt_token_ids, params.temperature) == (None, [5, 6, 7], 0.0)
