"""Strings a request may carry: NUL characters and lone surrogates are refused, naming the field that holds them."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.jobs.text_checks import check_text, is_safe_text, unsafe_string_path


def test_ordinary_text_including_paired_surrogates_is_safe():
    assert is_safe_text("tiếng Việt 😀 \n\t")
    assert not is_safe_text("a\x00b") and not is_safe_text("a\ud800")


def test_the_path_of_the_first_unsafe_value_is_found_in_nested_lists_and_maps():
    body = {"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "bad\x00"}]}
    assert unsafe_string_path(body) == ("messages", "1", "content")
    assert unsafe_string_path({"a": [1, None, {"b": "fine"}]}) is None


def test_an_unsafe_key_is_reported_as_its_container():
    assert unsafe_string_path({"metadata": {"\ud800": "v"}}) == ("metadata",)


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({"prompt": "x\x00"}, "prompt", "prompt: must not contain NUL"),
        ({"\udfff": 1}, None, "a field name must not contain NUL"),
        ("\x00", None, "a field name must not contain"),
    ],
)
def test_check_text_raises_naming_the_field(value, field, message):
    with pytest.raises(InvalidInput) as refused:
        check_text(value)
    assert refused.value.field == field and refused.value.message.startswith(message)


def test_a_prefix_names_fields_under_it():
    with pytest.raises(InvalidInput) as refused:
        check_text({"prompt": "\x00"}, prefix=("body",))
    assert refused.value.field == "body.prompt"
    check_text({"prompt": "fine"})
