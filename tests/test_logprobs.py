"""Log probabilities end to end: the real HTTP API and the session's worker, its default continuous batching."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.conftest import HttpServer
from tests.polling import poll_until

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def client(api_server: HttpServer) -> openai.OpenAI:
    with openai.OpenAI(base_url=f"{api_server.base_url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


def greedy_text(client: openai.OpenAI, prompt, **extra) -> openai.types.Completion:
    return client.completions.create(
        model="demo", prompt=prompt, max_tokens=6, temperature=0, extra_body={"ignore_eos": True}, **extra
    )


def test_concurrent_jobs_in_one_batch_each_get_their_own_logprobs_or_none(client):
    asks = [3, None, 3, None, 0, None]
    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(
            pool.map(lambda k: greedy_text(client, PROMPT, **({"logprobs": k} if k is not None else {})), asks)
        )
    for k, answer in zip(asks, answers, strict=True):
        choice = answer.choices[0]
        if k is None:
            assert choice.logprobs is None
            continue
        logprobs = choice.logprobs
        assert len(logprobs.tokens) == len(logprobs.token_logprobs) == answer.usage.completion_tokens == 6
        assert "".join(logprobs.tokens) == choice.text
        for chosen, token, top in zip(logprobs.token_logprobs, logprobs.tokens, logprobs.top_logprobs, strict=True):
            # Greedy: each token is the most likely one, so it heads its alternatives (the chosen one is always in).
            assert top[token] == chosen and max(top.values()) == pytest.approx(chosen, abs=1e-5)
            assert len(top) <= k + 1 and chosen < 0
    # The same greedy job gets the same tokens and logprobs whichever rows it shared the batch with (to float
    # rounding: a step's arithmetic depends a little on the batch's shape).
    same, other = answers[0].choices[0].logprobs, answers[2].choices[0].logprobs
    assert same.tokens == other.tokens
    assert same.token_logprobs == pytest.approx(other.token_logprobs, abs=1e-4)
    assert answers[0].choices[0].text == answers[1].choices[0].text


def test_chat_logprobs_in_openais_shape_each_token_the_argmax_when_greedy(client):
    answer = client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
        extra_body={"ignore_eos": True},
    )
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens == 5
    for item in content:
        assert item.bytes == list(item.token.encode())
        assert len(item.top_logprobs) == 2 and item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob
        assert item.top_logprobs[0].logprob == pytest.approx(item.logprob, abs=1e-5)


def test_streamed_logprobs_join_to_the_unstreamed_ones(client):
    whole = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0, logprobs=True,
        top_logprobs=1, extra_body={"ignore_eos": True},
    )  # fmt: skip
    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0, logprobs=True,
        top_logprobs=1, stream=True, extra_body={"ignore_eos": True},
    )  # fmt: skip
    text, items = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            items += choice.logprobs.content if choice.logprobs is not None else []
    assert text == whole.choices[0].message.content and items == whole.choices[0].logprobs.content

    # Seeded: the sequential lane, whose capture hands its logprobs on after each token too.
    legacy = greedy_text(client, PROMPT, logprobs=2, seed=3)
    pieces, tokens, logprobs = "", [], []
    for chunk in greedy_text(client, PROMPT, logprobs=2, seed=3, stream=True):
        pieces += chunk.choices[0].text if chunk.choices else ""
        if chunk.choices and chunk.choices[0].logprobs is not None:
            tokens += chunk.choices[0].logprobs.tokens
            logprobs += chunk.choices[0].logprobs.token_logprobs
    assert pieces == legacy.choices[0].text
    assert (tokens, logprobs) == (legacy.choices[0].logprobs.tokens, legacy.choices[0].logprobs.token_logprobs)


def test_echo_of_a_token_id_prompt_scores_the_prompt_as_lm_eval_reads_it(client, api_server: HttpServer):
    prompt_ids = [17, 250, 1033, 9]
    # What lm-eval's loglikelihood sends: the context and continuation as ids, echoed, one greedy token.
    first = client.completions.create(
        model="demo", prompt=[prompt_ids], echo=True, logprobs=1, max_tokens=1, temperature=0, seed=1234
    )
    logprobs = first.choices[0].logprobs
    assert len(logprobs.tokens) == len(prompt_ids) + 1 and first.usage.prompt_tokens == len(prompt_ids)
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    assert all(value < 0 for value in logprobs.token_logprobs[1:])
    output = job_of(api_server, first.id)["output"]
    assert first.choices[0].text == output["prompt_text"] + output["text"]
    assert [record["token_id"] for record in output["prompt_logprobs"]] == prompt_ids  # no BOS added
    # The prompt's forward pass and the generation's capture agree: the greedy token, appended to the prompt and
    # echoed, has the logprob it was generated with.
    again = client.completions.create(
        model="demo", prompt=[*prompt_ids, output["logprobs"][0]["token_id"]], echo=True, logprobs=1, max_tokens=1,
        temperature=0,
    )  # fmt: skip
    assert again.choices[0].logprobs.token_logprobs[len(prompt_ids)] == pytest.approx(
        logprobs.token_logprobs[-1], abs=1e-4
    )


def job_of(api_server: HttpServer, answer_id: str) -> dict:
    """The job behind an OpenAI answer (its id is the job's behind OpenAI's prefix)."""
    return requests.get(f"{api_server.base_url}/jobs/{answer_id.split('-', 1)[1]}", timeout=5).json()


def test_a_native_job_stores_each_tokens_logprob_and_alternatives(api_server: HttpServer):
    body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "logprobs": 2, "ignore_eos": True}
    job_id = requests.post(f"{api_server.base_url}/jobs", json=body, timeout=5).json()["id"]
    job = poll_until(
        lambda: requests.get(f"{api_server.base_url}/jobs/{job_id}", timeout=5).json(),
        lambda job: job["status"] == "succeeded",
        60,
        "the job to succeed",
    )
    records = job["output"]["logprobs"]
    assert len(records) == 4 and set(records[0]) == {"token_id", "token", "logprob", "top"}
    assert [alt["token_id"] for alt in records[0]["top"]][:1] == [records[0]["token_id"]]
    assert len(records[0]["top"]) == 2 and "prompt_logprobs" not in job["output"]
    assert json.dumps(job)  # plain JSON all the way down


def test_submit_batch_asks_every_line_for_logprobs_in_each_endpoints_spelling(tmp_path):
    from scripts.submit_batch import read_inputs

    source = tmp_path / "lines.jsonl"
    lines = [
        {"custom_id": "native", "body": {"prompt": "a"}},
        {"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}},
        {"custom_id": "text", "method": "POST", "url": "/v1/completions", "body": {"prompt": "b"}},
    ]
    source.write_text("\n".join(json.dumps(line) for line in lines))
    native, chat, text = read_inputs(source, {"logprobs": 3})
    assert native.body["logprobs"] == 3
    assert (chat.body["logprobs"], chat.body["top_logprobs"]) == (True, 3)
    assert text.body["logprobs"] == 3 and "top_logprobs" not in text.body
