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


def test_native_and_openai_lines_may_ask_for_n_choices():
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}
    native, openai_line = validate(
        [
            {"custom_id": "a", "body": {"prompt": "x", "n": 3}},
            {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": chat},
        ]
    )
    assert (native.params.n, openai_line.params.n) == (3, 2)
