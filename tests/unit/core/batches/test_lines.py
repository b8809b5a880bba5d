"""Validating a batch's lines: every bad line listed by its number, an empty batch refused."""

from __future__ import annotations

import pytest

from core.batches.lines import InvalidBatch, validate_batch_lines
from core.errors import InvalidInput


def validate(items):
    return validate_batch_lines(items, max_tokens_limit=16, max_prompt_chars=100)


def test_every_bad_line_is_listed_by_its_number():
    with pytest.raises(InvalidBatch) as refused:
        validate([{"custom_id": "a", "body": {"prompt": "x"}}, {"custom_id": "a", "body": {"prompt": "y"}}, 5])
    assert [error["line"] for error in refused.value.line_errors] == [2, 3]
    assert "appears more than once" in refused.value.line_errors[0]["message"]
    assert refused.value.to_dict()["error"]["lines"] == refused.value.line_errors


def test_an_empty_batch_is_refused():
    with pytest.raises(InvalidInput, match="no lines"):
        validate([])


def test_a_line_whose_schema_cant_be_enforced_is_listed_native_or_openai():
    unsatisfiable = {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {"type": "integer", "minimum": 3, "maximum": 1}},
    }
    good = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "integer", "maximum": 9}}}
    chat = {"method": "POST", "url": "/v1/chat/completions"}
    asked = {"messages": [{"role": "user", "content": "x"}], "response_format": unsatisfiable}
    lines = [
        {"custom_id": "ok", "body": {"prompt": "x", "response_format": good}},
        {"custom_id": "bad", "body": {"prompt": "x", "response_format": unsatisfiable}},
        {"custom_id": "bad-openai", "body": asked} | chat,
    ]
    with pytest.raises(InvalidBatch) as refused:
        validate(lines)
    assert [error["line"] for error in refused.value.line_errors] == [2, 3]
    assert all("can't be enforced" in error["message"] for error in refused.value.line_errors)
    assert validate(lines[:1])[0].params.response_format.schema() == {"type": "integer", "maximum": 9}


def test_native_and_openai_lines_may_ask_for_n_choices():
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}
    native, openai_line = validate(
        [
            {"custom_id": "a", "body": {"prompt": "x", "n": 3}},
            {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": chat},
        ]
    )
    assert (native.params.n, openai_line.params.n) == (3, 2)
