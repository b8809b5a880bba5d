"""The OpenAI-compatible endpoints with the official `openai` client, over HTTP, against the session's real worker."""

from __future__ import annotations

import json
import time

import openai
import pytest
import requests

from core.jobs.model import parse_iso
from core.settings import Settings
from tests.conftest import HttpServer, WorkerProcess, start_api_server, stop_process
from tests.polling import poll_until

API_KEY = "openai-test-key"
SERVED_MODEL = "demo-served"
HELLO = [{"role": "user", "content": "Xin chào! Bạn khỏe không?"}]


@pytest.fixture(scope="module")
def openai_server(worker: WorkerProcess, tmp_path_factory) -> HttpServer:
    """The API with an API key and a MODEL_NAME, wired to the session's worker."""
    env = dict(worker.env, API_KEYS=API_KEY, MODEL_NAME=SERVED_MODEL)
    server = start_api_server(env, tmp_path_factory.mktemp("openai-api") / "gunicorn.out")
    yield server
    stop_process(server.process)


@pytest.fixture(scope="module")
def client(openai_server: HttpServer) -> openai.OpenAI:
    with openai.OpenAI(base_url=f"{openai_server.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=120) as client:
        yield client


def job_of(base_url: str, completion_id: str) -> dict:
    """The job behind an OpenAI answer (its id is the job's behind OpenAI's prefix), as GET /jobs/<id> shows it."""
    job_id = completion_id.split("-", 1)[1]
    return requests.get(f"{base_url}/jobs/{job_id}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).json()


def test_chat_completion_is_a_job_like_any_other(client, openai_server):
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=8, temperature=0, seed=1, user="u-1", logprobs=False
    )
    assert answer.object == "chat.completion" and answer.model == SERVED_MODEL
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens <= 8 and answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    job = job_of(openai_server.base_url, answer.id)
    assert job["status"] == "succeeded" and job["output"]["text"] == choice.message.content
    assert job["input"]["messages"] == HELLO and job["input"]["temperature"] == 0.0 and job["input"]["max_tokens"] == 8
    assert job["resources"]["batch_size"] >= 1  # it ran on the worker like any job, resource-logged
    # Listed among the key's jobs.
    listed = requests.get(
        f"{openai_server.base_url}/jobs", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5
    ).json()
    assert job["id"] in [item["id"] for item in listed["data"]]


def test_text_completion(client, openai_server):
    answer = client.completions.create(
        model="anything", prompt="Hà Nội là", max_tokens=6, extra_body={"ignore_eos": True}
    )
    assert answer.object == "text_completion" and answer.model == SERVED_MODEL
    assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 6
    job = job_of(openai_server.base_url, answer.id)
    assert job["input"]["prompt"] == "Hà Nội là" and job["output"]["text"] == answer.choices[0].text


def test_a_list_of_prompts_is_answered_with_every_prompts_choices_in_order(client, openai_server):
    """What evaluation harnesses send: several prompts in one request, each with n choices and logprobs."""
    prompts = ["Hà Nội là", "Huế ở", "Sài Gòn"]
    answer = client.completions.create(
        model="m", prompt=prompts, max_tokens=5, n=2, logprobs=1, echo=True, extra_body={"ignore_eos": True}
    )
    assert [choice.index for choice in answer.choices] == list(range(6))
    for choice in answer.choices:
        prompt = prompts[choice.index // 2]  # prompt i's choice j has index i * n + j
        assert choice.text.startswith(prompt) and choice.finish_reason == "length"
        assert choice.logprobs.tokens and len(choice.logprobs.token_logprobs) == len(choice.logprobs.tokens)
    assert answer.usage.completion_tokens == 3 * 2 * 5
    # Each prompt was a job of its own; the answer's id names the first.
    first = job_of(openai_server.base_url, answer.id)
    assert first["input"]["prompt"] == prompts[0] and first["status"] == "succeeded"
    ids = client.completions.create(
        model="m", prompt=[[5, 6, 7], [8, 9]], max_tokens=3, extra_body={"ignore_eos": True}
    )
    assert len(ids.choices) == 2 and ids.usage.prompt_tokens == 5


def test_a_streamed_list_of_prompts_sends_each_prompts_choices_under_their_indexes(client, openai_server):
    prompts = ["Hà Nội là", "Huế ở"]
    chunks = list(
        client.completions.create(
            model="m",
            prompt=prompts,
            max_tokens=6,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    texts: dict[int, str] = {}
    finished: dict[int, str] = {}
    for chunk in chunks[:-1]:
        assert chunk.id == chunks[0].id and chunk.usage is None
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason is not None:
                finished[choice.index] = choice.finish_reason
    assert finished == dict.fromkeys(range(4), "length") and all(texts.values())
    # One usage for the whole answer, last: both prompts' jobs, 2 choices of 6 tokens each.
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2 * 2 * 6
    # The same texts as the jobs behind it hold.
    first = job_of(openai_server.base_url, chunks[0].id)
    assert [choice["text"] for choice in first["output"]["choices"]] == [texts[0], texts[1]]


def test_models_list_and_retrieve(client):
    models = client.models.list()
    assert [model.id for model in models.data] == [SERVED_MODEL]
    assert client.models.retrieve(SERVED_MODEL).id == SERVED_MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4")
    assert caught.value.body["code"] == "model_not_found"


def test_n_above_the_limit_is_a_400_saying_so_and_creates_no_job(client, openai_server):
    before = requests.get(f"{openai_server.base_url}/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="x", messages=HELLO, n=17)
    error = caught.value.body
    assert error["param"] == "n" and "16" in error["message"] and error["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="x", messages=HELLO, tools=[{"type": "function", "function": {"name": "f"}}]
        )
    assert caught.value.body["param"] == "tools"
    after = requests.get(f"{openai_server.base_url}/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert [job["id"] for job in after["data"]] == [job["id"] for job in before["data"]]


def test_penalties_min_tokens_and_stop_token_ids_are_honoured_and_bad_ones_refused(client, openai_server):
    rules = {"frequency_penalty": 2.0, "presence_penalty": 0.5}
    extra = {"min_tokens": 4, "stop_token_ids": [1]}
    chat = client.chat.completions.create(model="x", messages=HELLO, max_tokens=8, **rules, extra_body=extra)
    assert chat.usage.completion_tokens >= 4
    text = client.completions.create(model="x", prompt="Once", max_tokens=6, **rules, extra_body=extra)
    assert text.usage.completion_tokens >= 4 and text.choices[0].finish_reason in ("stop", "length")
    before = requests.get(f"{openai_server.base_url}/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    for bad, param in (
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"extra_body": {"min_tokens": 9}}, "min_tokens"),
        ({"extra_body": {"stop_token_ids": [10**7]}}, "stop_token_ids"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.completions.create(model="x", prompt="Once", max_tokens=8, **bad)
        assert caught.value.body["param"] == param, caught.value.body
    after = requests.get(f"{openai_server.base_url}/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert [job["id"] for job in after["data"]] == [job["id"] for job in before["data"]]


def test_a_wrong_key_is_a_401_in_openai_shape(openai_server):
    stranger = openai.OpenAI(base_url=f"{openai_server.base_url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.chat.completions.create(model="x", messages=HELLO)
    assert caught.value.status_code == 401
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    # The service's own routes keep the service's error shape.
    answer = requests.get(f"{openai_server.base_url}/jobs", headers={"Authorization": "Bearer not-the-key"}, timeout=5)
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "unauthorized"


def test_every_error_on_these_routes_takes_openai_shape(openai_server):
    auth = {"Authorization": f"Bearer {API_KEY}"}
    url = f"{openai_server.base_url}/v1/chat/completions"
    answers = {
        "not JSON": requests.post(url, data=b"{", headers={**auth, "Content-Type": "application/json"}, timeout=5),
        "a form": requests.post(url, data={"a": "b"}, headers=auth, timeout=5),
        "a wrong method": requests.get(url, headers=auth, timeout=5),
        "a bad field": requests.post(url, json={"messages": HELLO, "temperature": "hot"}, headers=auth, timeout=5),
    }
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {"not JSON": 400, "a form": 415, "a wrong method": 405, "a bad field": 400}
    for answer in answers.values():
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert answers["a bad field"].json()["error"]["param"] == "temperature"


def test_streamed_chat_completion_carries_the_text_as_it_comes(client, openai_server):
    stream = client.chat.completions.create(
        model="x",
        messages=HELLO,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == SERVED_MODEL for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *content_chunks, finish, usage = chunks
    deltas = [chunk.choices[0].delta.content for chunk in content_chunks[1:]]
    assert finish.choices[0].finish_reason == "length" and not finish.choices[0].delta.content
    assert usage.choices == [] and usage.usage.completion_tokens == 24
    job = job_of(openai_server.base_url, finish.id)
    assert "".join(deltas) == job["output"]["text"] and job["status"] == "succeeded"
    assert len(deltas) > 1  # token by token as the worker wrote them, not the whole text at the end
    assert usage.usage.prompt_tokens == job["usage"]["prompt_tokens"]


def test_streamed_text_completion_ends_with_done(openai_server):
    answer = requests.post(
        f"{openai_server.base_url}/v1/completions",
        json={"model": "x", "prompt": "Phở bò", "max_tokens": 12, "stream": True, "ignore_eos": True},
        headers={"Authorization": f"Bearer {API_KEY}"},
        stream=True,
        timeout=120,
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/event-stream")
    lines = [line for line in answer.iter_lines(decode_unicode=True) if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(chunk["object"] == "text_completion" and "usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    job = job_of(openai_server.base_url, chunks[0]["id"])
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == job["output"]["text"]


def _long_stream(client: openai.OpenAI, n: int):
    """A streamed chat completion that would run for many seconds; its first chunk (the role) has arrived."""
    stream = client.chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": f"Kể một câu chuyện dài số {n}"}],
        max_tokens=1500,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    first = next(iter(stream))
    return stream, first.id.removeprefix("chatcmpl-")


def test_a_client_that_leaves_mid_stream_cancels_its_job_and_its_batch_place_goes_to_the_next(client, openai_server):
    auth = {"Authorization": f"Bearer {API_KEY}"}

    def job(job_id: str) -> dict:
        return requests.get(f"{openai_server.base_url}/jobs/{job_id}", headers=auth, timeout=5).json()

    # Fill the session worker's batch (the default MAX_BATCH_SIZE) with streams, and queue one job behind them.
    places = Settings.model_fields["max_batch_size"].default
    streams = [_long_stream(client, n) for n in range(places)]
    ids = [job_id for _, job_id in streams]
    for job_id in ids:
        poll_until(lambda job_id=job_id: job(job_id), lambda j: j["status"] == "running", 60, f"{job_id} running")
    waiting = requests.post(
        f"{openai_server.base_url}/jobs", json={"prompt": "Chờ một chỗ", "max_tokens": 4}, headers=auth, timeout=5
    ).json()
    try:
        assert job(waiting["id"])["status"] == "queued"  # no place for it while the batch is full

        # The first client leaves: its job is canceled within a second, keeping the text it had.
        streams[0][0].close()
        left_at = time.time()
        canceled = poll_until(lambda: job(ids[0]), lambda j: j["status"] == "canceled", 10, "the left job canceled")
        assert canceled["output"]["finish_reason"] == "canceled"
        assert parse_iso(canceled["completed_at"]).timestamp() - left_at < 1.0
        # Its place goes to the queued job while the other streams' jobs still run.
        started = poll_until(lambda: job(waiting["id"]), lambda j: j["status"] != "queued", 30, "the queued job run")
        assert started["status"] in ("running", "succeeded")
        assert all(job(job_id)["status"] == "running" for job_id in ids[1:])
    finally:
        for stream, _ in streams:
            stream.close()
    # Every other client left too: all their jobs end canceled (none runs on for nobody).
    for job_id in ids[1:]:
        poll_until(lambda job_id=job_id: job(job_id), lambda j: j["status"] == "canceled", 10, f"{job_id} canceled")


def test_stop_ends_the_text_before_the_first_stop_string(client):
    ask = dict(model="x", prompt="Hà Nội là", max_tokens=16, temperature=0, extra_body={"ignore_eos": True})
    text = client.completions.create(**ask).choices[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), f"the greedy text gives no stop string to cut at: {text!r}"
    stopped = client.completions.create(**ask, stop=[stop])
    assert stopped.choices[0].text == text[: text.index(stop)] and stopped.choices[0].finish_reason == "stop"


def test_the_same_seed_samples_the_same_text(client):
    ask = dict(model="x", messages=HELLO, max_tokens=12, temperature=1.0, extra_body={"ignore_eos": True})
    first, again = (client.chat.completions.create(**ask, seed=42) for _ in range(2))
    assert first.choices[0].message.content == again.choices[0].message.content


def test_continuous_usage_stats_put_usage_in_every_chunk(client, openai_server):
    stream = client.chat.completions.create(
        model="x",
        messages=HELLO,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    assert all("usage" in chunk.model_dump() for chunk in chunks)
    *_, finish, usage = chunks
    assert finish.choices[0].finish_reason == "length" and finish.usage == usage.usage
    job = job_of(openai_server.base_url, usage.id)
    assert usage.usage.completion_tokens == 8 == job["usage"]["completion_tokens"]


def test_health_answers_like_the_serving_engines_without_a_key(openai_server):
    answer = requests.get(f"{openai_server.base_url}/health", timeout=5)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_a_streaming_client_that_asks_too_much_gets_an_openai_error_and_no_job(client, openai_server):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="x", messages=HELLO, max_tokens=10**6, stream=True)
    assert caught.value.body["param"] == "max_tokens" and caught.value.body["type"] == "invalid_request_error"
