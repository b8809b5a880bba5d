"""The OpenAI-compatible completions and models, over the in-process app."""

from __future__ import annotations

import json

CHAT = {"model": "any", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def test_a_chat_completion_answers_with_the_jobs_text(answering_api):
    response = answering_api.client.post("/v1/chat/completions", json=CHAT, headers=answering_api.headers)
    assert response.status_code == 200
    body = response.get_json()
    job_id = answering_api.queue.job_ids[0]
    assert body["id"] == f"chatcmpl-{job_id}" and body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == "Bonjour"
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["total_tokens"] == 5
    stored = answering_api.store.get(job_id).input
    assert stored.model_dump(mode="json")["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_text_completion_answers_with_the_jobs_text(answering_api):
    response = answering_api.client.post(
        "/v1/completions", json={"model": "any", "prompt": "Hi"}, headers=answering_api.headers
    )
    body = response.get_json()
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == "Bonjour"
    assert answering_api.store.get(answering_api.queue.job_ids[0]).input.max_tokens == 16


def test_a_streamed_chat_completion_sends_chunks_and_done(answering_api):
    response = answering_api.client.post(
        "/v1/chat/completions",
        json=CHAT | {"stream": True, "stream_options": {"include_usage": True}},
        headers=answering_api.headers,
    )
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = [line.removeprefix("data: ") for line in response.get_data(as_text=True).split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert text == "Bonjour"
    assert chunks[-1]["usage"]["total_tokens"] == 5


def test_openai_errors_take_openais_shape_and_a_bad_field_is_400(api):
    response = api.client.post("/v1/chat/completions", json={"model": "m", "messages": []}, headers=api.headers)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request_error" and set(error) >= {"message", "param", "code"}
    assert api.queue.published == []
    unauthorized = api.client.post("/v1/chat/completions", json=CHAT)
    assert unauthorized.status_code == 401 and unauthorized.get_json()["error"]["code"] == "invalid_api_key"


def test_the_served_model_is_listed_and_retrieved_by_name_only(make_api, tmp_path):
    api = make_api(model_name="tiny-llama")
    listing = api.client.get("/v1/models", headers=api.headers).get_json()
    assert listing["object"] == "list" and [model["id"] for model in listing["data"]] == ["tiny-llama"]
    assert api.client.get("/v1/models/tiny-llama", headers=api.headers).get_json()["object"] == "model"
    assert api.client.get("/v1/models/gpt-4", headers=api.headers).status_code == 404
