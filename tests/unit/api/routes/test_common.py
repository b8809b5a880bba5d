"""The helpers every route uses, seen through the routes: JSON bodies, ids, paging and waited-for outcomes."""

from __future__ import annotations

import pytest

from api.routes.common import is_json_media_type


@pytest.mark.parametrize(
    ("mimetype", "is_json"),
    [
        ("application/json", True),
        ("application/merge-patch+json", True),
        ("text/json", False),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("", False),
    ],
)
def test_only_json_media_types_count_as_json(mimetype, is_json):
    assert is_json_media_type(mimetype) is is_json


def test_a_body_with_a_structured_json_type_is_read_as_json(api):
    response = api.client.post(
        "/jobs", data='{"prompt": "hi"}', headers=api.headers, content_type="application/vnd.test+json"
    )
    assert response.status_code == 202


def test_a_form_body_is_415_and_nesting_past_the_parser_is_400(api):
    form = api.client.post("/jobs", data={"prompt": "hi"}, headers=api.headers)
    assert form.status_code == 415 and form.get_json()["error"]["type"] == "unsupported_media_type"
    deep = "[" * 100_000 + "]" * 100_000
    assert api.client.post("/jobs", data=deep, headers=api.headers, content_type="application/json").status_code in (
        400,
        413,
    )


def test_malformed_batch_ids_are_404_without_asking_redis(api):
    for path in ("/batches/batch_x", "/batches/" + "a" * 32):
        response = api.client.get(path, headers=api.headers)
        assert response.status_code == 404 and response.get_json()["error"]["type"] == "not_found"
