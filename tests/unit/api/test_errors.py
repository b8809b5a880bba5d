"""Typed errors become HTTP in one place: the status table, the two error shapes, Retry-After, hidden addresses."""

from __future__ import annotations

import pytest

from api.errors import OPENAI_HTTP_STATUS_OF, http_status_of, openai_error, speaks_openai
from core.errors import (
    BatchNotFound,
    InvalidInput,
    JobNotFound,
    QueueFull,
    SchemaUnsupported,
    ServiceError,
    StoreUnavailable,
    TooManyRequests,
    WaitTimedOut,
    WrongState,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [(JobNotFound("x"), 404), (BatchNotFound("x"), 404), (WrongState("x"), 409), (InvalidInput("x"), 422),
     (TooManyRequests("x"), 429), (QueueFull("x"), 503), (StoreUnavailable("x"), 503),
     (WaitTimedOut("x", job_id="j"), 504), (ServiceError("x"), 500)],
)  # fmt: skip
def test_each_typed_error_has_its_status(error, status):
    assert http_status_of(error) == status


def test_an_unenforceable_schema_is_a_422_on_the_openai_routes_too_where_other_bad_input_is_a_400():
    assert http_status_of(SchemaUnsupported("x"), OPENAI_HTTP_STATUS_OF) == 422
    assert http_status_of(InvalidInput("x"), OPENAI_HTTP_STATUS_OF) == 400


@pytest.mark.parametrize(
    ("path", "openai"),
    [("/v1/chat/completions", True), ("/v1/models/x", True), ("/v1/files/f/content", True), ("/v1/generate", False),
     ("/v1/modelsx", False), ("/jobs", False)],
)  # fmt: skip
def test_openai_paths_are_recognised_by_prefix(path, openai):
    assert speaks_openai(path) is openai


def test_openai_errors_are_typed_by_status():
    assert openai_error(500, "m").error.type == "server_error"
    assert openai_error(429, "m").error.type == "requests"
    assert openai_error(401, "m").error.code == "invalid_api_key"
    assert openai_error(400, "m", param="model").model_dump(mode="json")["error"] == {
        "message": "m",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }


def test_unknown_routes_and_methods_answer_json_in_the_shape_of_their_path(api):
    missing = api.client.get("/nowhere")
    assert missing.status_code == 404 and missing.get_json()["error"]["type"] == "not_found"
    method = api.client.delete("/jobs", headers=api.headers)
    assert method.status_code == 405 and method.get_json()["error"]["type"] == "method_not_allowed"
    openai_missing = api.client.get("/v1/models/a/b/c/d", headers=api.headers)
    assert set(openai_missing.get_json()["error"]) == {"message", "type", "param", "code"}


def test_redis_away_is_a_503_with_retry_after_that_never_names_the_address(make_api):
    api = make_api(redis_url="redis://127.0.0.1:1/0", redis_socket_timeout_seconds=0.2)
    response = api.client.get("/jobs", headers=api.headers)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["type"] == "store_unavailable"
    assert "127.0.0.1" not in response.get_data(as_text=True) and ":1" not in response.get_json()["error"]["message"]


def test_an_unexpected_exception_is_a_500_without_its_text(api):
    def explode(*_args, **_kwargs):
        raise RuntimeError("secret detail")

    api.app.extensions["llm"].store.list_for_owner = explode
    response = api.client.get("/jobs", headers=api.headers)
    assert response.status_code == 500 and response.get_json()["error"]["type"] == "internal_error"
    assert "secret detail" not in response.get_data(as_text=True)
