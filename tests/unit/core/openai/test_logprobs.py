"""Stored token logprobs in OpenAI's chat and legacy completion shapes."""

from __future__ import annotations

from core.jobs.model import Job, JobInput
from core.jobs.records import JobOutput, TokenLogprob
from core.openai.logprobs import answer_logprobs, chat_logprobs, echoed_text, text_logprobs


def record(token: str, logprob: float | None, *top: tuple[str, float]) -> TokenLogprob:
    alternatives = [{"token_id": i, "token": t, "logprob": lp} for i, (t, lp) in enumerate(top)]
    return TokenLogprob(token_id=len(token), token=token, logprob=logprob, top=alternatives)


GENERATED = [record(" é", -0.5, (" é", -0.5), (" a", -1.5)), record("!", -2.0, ("?", -1.0), ("!", -2.0))]


def test_the_chat_shape_carries_each_token_with_bytes_and_at_most_top_alternatives():
    shape = chat_logprobs(GENERATED, top=1).model_dump(mode="json")
    assert shape["refusal"] is None
    first, second = shape["content"]
    assert first == {
        "token": " é",
        "logprob": -0.5,
        "bytes": [32, 195, 169],
        "top_logprobs": [{"token": " é", "logprob": -0.5, "bytes": [32, 195, 169]}],
    }
    assert [alt["token"] for alt in second["top_logprobs"]] == ["?"]
    assert chat_logprobs(GENERATED, top=0).content[0].top_logprobs == []


def test_the_legacy_shape_has_parallel_lists_and_always_names_the_chosen_token():
    shape = text_logprobs(GENERATED, top=1, first_offset=3).model_dump(mode="json")
    assert shape == {
        "tokens": [" é", "!"],
        "token_logprobs": [-0.5, -2.0],
        "top_logprobs": [{" é": -0.5}, {"?": -1.0, "!": -2.0}],
        "text_offset": [3, 5],
    }


def test_an_echoed_prompt_comes_first_and_its_first_token_has_no_logprob():
    prompt = [record("Hi", None), record(" there", -3.0, (",", -1.0))]
    job = Job(
        id="a" * 32,
        status="succeeded",
        created_at="2026-01-01T00:00:00Z",
        input=JobInput(prompt_token_ids=[1, 2], logprobs=1, echo=True),
        output=JobOutput(
            text=" é!", finish_reason="length", logprobs=GENERATED, prompt_logprobs=prompt, prompt_text="Hi there"
        ),
    )
    legacy = answer_logprobs(job, chat=False)
    assert legacy.tokens == ["Hi", " there", " é", "!"]
    assert legacy.token_logprobs[:2] == [None, -3.0] and legacy.top_logprobs[0] is None
    assert legacy.text_offset == [0, 2, 8, 10]
    assert echoed_text(job) + job.output.text == "Hi there é!"
    assert len(answer_logprobs(job, chat=True).content) == 2


def test_a_job_that_asked_for_no_logprobs_answers_none_and_stores_none():
    job = Job(
        id="b" * 32,
        status="succeeded",
        created_at="2026-01-01T00:00:00Z",
        input=JobInput(prompt="x"),
        output=JobOutput(text="y", finish_reason="stop"),
    )
    assert answer_logprobs(job, chat=True) is None and echoed_text(job) == ""
    assert job.model_dump(mode="json")["output"] == {"text": "y", "finish_reason": "stop"}


def test_an_echoed_text_prompt_is_returned_as_it_was_sent():
    job = Job(
        id="c" * 32,
        status="succeeded",
        created_at="2026-01-01T00:00:00Z",
        input=JobInput(prompt="Xin  chào", echo=True),
        output=JobOutput(text="!", finish_reason="length", prompt_text="Xin chào"),
    )
    assert echoed_text(job) == "Xin  chào"


def test_a_streamed_chunk_carries_the_logprobs_of_its_own_tokens_in_each_shape():
    from core.openai.answers import StreamChunks, sent
    from core.openai.protocol import Endpoint

    chat = StreamChunks(Endpoint.CHAT_COMPLETIONS, "d" * 32, 0, "demo", include_usage=False, logprobs=1)
    chunk = sent(chat.text(" é!", GENERATED))["choices"][0]
    assert chunk["delta"]["content"] == " é!" and [item["token"] for item in chunk["logprobs"]["content"]] == [
        " é",
        "!",
    ]
    text = StreamChunks(Endpoint.COMPLETIONS, "d" * 32, 0, "demo", include_usage=False, logprobs=1)
    assert sent(text.text("!", GENERATED[1:], offset=2))["choices"][0]["logprobs"]["text_offset"] == [2]
    plain = StreamChunks(Endpoint.COMPLETIONS, "d" * 32, 0, "demo", include_usage=False)
    assert sent(plain.text("!"))["choices"][0]["logprobs"] is None
