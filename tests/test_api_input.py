"""Bad input never reaches the queue: the Flask app against a real Redis, on a queue no worker reads."""

from __future__ import annotations

import time

import pytest
import redis

from api.app import create_app
from broker.kombu_redis import priority_list_names
from tests.conftest import queue_length, unconsumed_queue_name


@pytest.fixture
def queue(request) -> str:
    return unconsumed_queue_name(request)


@pytest.fixture
def client(make_settings, queue):
    return create_app(make_settings(gpu_queue=queue, max_tokens_limit=512)).test_client()


def assert_error_shape(response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == error_type and body["error"]["message"]
    return body["error"]


def test_valid_job_is_stored_and_enqueued_once(client, redis_server, queue):
    response = client.post("/jobs", json={"prompt": "Xin chào", "max_tokens": 8})
    assert response.status_code == 202
    job = response.get_json()
    assert queue_length(redis_server.url, queue) == 1
    assert client.get(f"/jobs/{job['id']}").get_json()["status"] == "queued"
    assert job["input"] == {"prompt": "Xin chào", "max_tokens": 8, "temperature": 0.7, "top_p": 0.9,
                            "do_sample": True, "ignore_eos": False}  # fmt: skip


def test_sampling_rules_are_stored_on_the_job(client, redis_server, queue):
    rules = {"presence_penalty": 0.5, "frequency_penalty": 1.0, "min_tokens": 2, "stop_token_ids": [13, 14]}
    response = client.post("/jobs", json={"prompt": "Xin chào", "max_tokens": 8, **rules})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert {name: response.get_json()["input"][name] for name in rules} == rules
    assert queue_length(redis_server.url, queue) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, None),
        ({"max_tokens": 8}, None),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, None),
        ({"prompt": 42}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": ["a"]}, "prompt"),
        ({"prompt": "a", "max_tokens": "64"}, "max_tokens"),
        ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "a", "max_tokens": 100_000}, "max_tokens"),
        ({"prompt": "a", "temperature": "hot"}, "temperature"),
        ({"prompt": "a", "temperature": -1}, "temperature"),
        ({"prompt": "a", "top_p": 0}, "top_p"),
        ({"prompt": "a", "do_sample": "yes"}, "do_sample"),
        ({"prompt": "a", "top_k": 0}, "top_k"),
        ({"prompt": "a", "stop": [""]}, "stop"),
        ({"prompt": "a", "stop": 5}, "stop"),
        ({"prompt": "a", "seed": -1}, "seed"),
        ({"prompt": "a", "presence_penalty": 2.5}, "presence_penalty"),
        ({"prompt": "a", "frequency_penalty": -3}, "frequency_penalty"),
        ({"prompt": "a", "min_tokens": -1}, "min_tokens"),
        ({"prompt": "a", "max_tokens": 4, "min_tokens": 5}, "min_tokens"),
        ({"prompt": "a", "stop_token_ids": [-1]}, "stop_token_ids.0"),
        ({"prompt": "a", "stop_token_ids": 5}, "stop_token_ids"),
        ({"prompt": "a", "metadata": {"k": 1}}, "metadata.k"),
        ({"prompt": "a", "unknown_field": 1}, "unknown_field"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": "hello"}, "messages"),
    ],
)
def test_bad_body_is_a_422_and_never_enqueued(client, redis_server, queue, body, field):
    error = assert_error_shape(client.post("/jobs", json=body), 422, "invalid_input")
    assert error.get("field") == field
    assert queue_length(redis_server.url, queue) == 0


@pytest.mark.parametrize("payload", [b"{not json", b"", b"\xff\xfe"])
def test_body_that_is_not_json_is_a_400(client, redis_server, queue, payload):
    response = client.post("/jobs", data=payload, content_type="application/json")
    assert_error_shape(response, 400, "malformed_body")
    assert queue_length(redis_server.url, queue) == 0


def test_json_that_is_not_an_object_is_a_422(client):
    assert_error_shape(client.post("/jobs", json=["prompt"]), 422, "invalid_input")


def test_sync_generate_endpoint_rejects_bad_input_the_same_way(client, redis_server, queue):
    assert_error_shape(client.post("/v1/generate", json={"prompt": 1}), 422, "invalid_input")
    assert queue_length(redis_server.url, queue) == 0


def test_body_over_the_limit_is_a_413(make_settings, queue, redis_server):
    client = create_app(make_settings(gpu_queue=queue, max_body_bytes=4096)).test_client()
    response = client.post("/jobs", json={"prompt": "x" * 10_000})
    assert_error_shape(response, 413, "body_too_large")
    assert queue_length(redis_server.url, queue) == 0


def test_unknown_job_is_a_404_json_error(client):
    assert_error_shape(client.get("/jobs/does-not-exist"), 404, "not_found")


def test_unknown_route_and_wrong_method_are_json(client):
    assert_error_shape(client.get("/nowhere"), 404, "not_found")
    assert_error_shape(client.delete("/jobs"), 405, "method_not_allowed")


@pytest.mark.parametrize("query", ["status=done", "limit=0", "limit=1000", "limit=x", "cursor=abc"])
def test_bad_listing_query_is_a_422(client, query):
    assert_error_shape(client.get(f"/jobs?{query}"), 422, "invalid_input")


def test_full_queue_answers_503_with_retry_after(make_settings, queue, redis_server):
    client = create_app(make_settings(gpu_queue=queue, max_queue_depth=2)).test_client()
    for _ in range(2):
        assert client.post("/jobs", json={"prompt": "a"}).status_code == 202
    response = client.post("/jobs", json={"prompt": "a"})
    assert_error_shape(response, 503, "queue_full")
    assert int(response.headers["Retry-After"]) > 0
    assert queue_length(redis_server.url, queue) == 2


def test_redis_unreachable_answers_503_quickly(make_settings):
    from launcher.redis_server import free_port

    client = create_app(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")).test_client()
    started = time.monotonic()
    response = client.post("/jobs", json={"prompt": "a"})
    assert time.monotonic() - started < 2.0
    assert_error_shape(response, 503, "store_unavailable")
    assert "Retry-After" in response.headers


def test_api_keys_guard_and_scope_jobs(make_settings, queue):
    client = create_app(make_settings(gpu_queue=queue, api_keys=["key-a", "key-b"])).test_client()
    assert_error_shape(client.post("/jobs", json={"prompt": "a"}), 401, "unauthorized")
    wrong = client.post("/jobs", json={"prompt": "a"}, headers={"Authorization": "Bearer nope"})
    assert_error_shape(wrong, 401, "unauthorized")
    created = client.post("/jobs", json={"prompt": "a"}, headers={"Authorization": "Bearer key-a"})
    assert created.status_code == 202
    job_id = created.get_json()["id"]
    assert client.get(f"/jobs/{job_id}", headers={"X-API-Key": "key-a"}).status_code == 200
    other = client.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer key-b"})
    assert_error_shape(other, 404, "not_found")
    listing = client.get("/jobs", headers={"Authorization": "Bearer key-b"}).get_json()
    assert job_id not in [j["id"] for j in listing["data"]]


def test_sync_generate_times_out_with_504_naming_a_pollable_job(make_settings, queue):
    client = create_app(make_settings(gpu_queue=queue, sync_wait_seconds=0.3)).test_client()
    response = client.post("/v1/generate", json={"prompt": "a", "max_tokens": 4})
    body = response.get_json()
    assert response.status_code == 504 and body["error"]["type"] == "timeout"
    assert client.get(f"/jobs/{body['error']['job_id']}").get_json()["status"] == "queued"


def test_readyz_is_503_without_a_worker_and_healthz_stays_200(make_settings, redis_server):
    # Database 3 of the test Redis: no worker ever announces itself there.
    client = create_app(make_settings(redis_url=redis_server.url.rsplit("/", 1)[0] + "/3")).test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["workers"] == []


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(client, redis_server, queue):
    headers = {"Idempotency-Key": "retry-me"}
    first = client.post("/jobs", json={"prompt": "một lần"}, headers=headers)
    again = client.post("/jobs", json={"prompt": "một lần"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert queue_length(redis_server.url, queue) == 1
    other = client.post("/jobs", json={"prompt": "khác"}, headers=headers)
    assert_error_shape(other, 422, "invalid_input")


def test_idempotency_key_is_freed_when_the_submission_fails(make_settings, queue, redis_server):
    client = create_app(make_settings(gpu_queue=queue, max_queue_depth=1)).test_client()
    assert client.post("/jobs", json={"prompt": "đầy"}).status_code == 202
    headers = {"Idempotency-Key": "after-full"}
    assert client.post("/jobs", json={"prompt": "x"}, headers=headers).status_code == 503
    redis.Redis.from_url(redis_server.url).delete(*priority_list_names(queue))  # the queue drains
    retried = client.post("/jobs", json={"prompt": "x"}, headers=headers)
    assert retried.status_code == 202


@pytest.mark.parametrize("body", [{"prompt": "a", "temperature": 1e-300}, {"prompt": "a", "top_k": 10**12}])
def test_sampling_values_that_would_break_the_engine_are_refused(client, body):
    assert_error_shape(client.post("/jobs", json=body), 422, "invalid_input")


def test_deeply_nested_json_is_a_client_error(client):
    response = client.post("/jobs", data="[" * 50_000, content_type="application/json")
    assert response.status_code == 400
