"""The OpenAI-compatible endpoints with the official `openai` client, over HTTP, against the session's real worker."""

from __future__ import annotations

import openai
import pytest
import requests

from tests.conftest import HttpServer, WorkerProcess, start_api_server, stop_process

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
    return openai.OpenAI(base_url=f"{openai_server.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


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


def test_models_list_and_retrieve(client):
    models = client.models.list()
    assert [model.id for model in models.data] == [SERVED_MODEL]
    assert client.models.retrieve(SERVED_MODEL).id == SERVED_MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4")
    assert caught.value.body["code"] == "model_not_found"


def test_n_above_one_is_a_400_saying_so_and_creates_no_job(client, openai_server):
    before = requests.get(f"{openai_server.base_url}/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="x", messages=HELLO, n=2)
    error = caught.value.body
    assert error["param"] == "n" and "n=1" in error["message"] and error["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="x", messages=HELLO, tools=[{"type": "function", "function": {"name": "f"}}]
        )
    assert caught.value.body["param"] == "tools"
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
