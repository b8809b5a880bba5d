"""One JSON text read from byte chunks a value at a time: values split anywhere by chunks are read whole, and a
refusal names the line, column and character as `json` would."""

from __future__ import annotations

import json

import pytest

from core.batches.json_stream import JsonStream, array_items, object_keys
from core.errors import InvalidInput

NUMBERS = b"[12345678, 1.5e10,-0.25E-3 ,true, 7]"


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", range(1, len(NUMBERS) + 1))
def test_a_number_split_by_a_chunk_is_read_whole(size):
    assert list(array_items(JsonStream(chunked(NUMBERS, size)), "it")) == json.loads(NUMBERS)


@pytest.mark.parametrize("size", [1, 2, 5, 1 << 16])
def test_an_objects_keys_come_one_at_a_time_with_their_values_read_between(size):
    data = '\ufeff {"a": [1, {"b": "é,]}"}], "c": null, "d": "x"} '.encode()
    stream = JsonStream(chunked(data, size))
    read = {key: stream.value() for key in object_keys(stream)}
    stream.end("the object")
    assert read == {"a": [1, {"b": "é,]}"}], "c": None, "d": "x"}


def test_an_empty_array_and_an_empty_object_yield_nothing():
    assert list(array_items(JsonStream([b" [ ] "]), "it")) == []
    assert list(object_keys(JsonStream([b"{}"]))) == []


def test_items_are_handed_on_before_the_rest_of_the_body_is_read():
    read_chunks = []

    def chunks():
        for chunk in (b"[1, ", b"2, ", b"3]"):
            read_chunks.append(chunk)
            yield chunk

    items = array_items(JsonStream(chunks()), "it")
    assert next(items) == 1 and read_chunks == [b"[1, "]


def test_a_refusal_names_the_place_over_lines_split_by_chunks():
    data = b'[1,\n 2,\n {"x": tru}]'
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(data)
    for size in (1, 3, 64):
        with pytest.raises(InvalidInput) as refused:
            list(array_items(JsonStream(chunked(data, size)), "it"))
        assert f"line {whole.value.lineno} column {whole.value.colno}" in refused.value.message
        assert "in the batch's line 3" in refused.value.message


def test_something_other_than_a_list_is_refused_naming_what_was_expected():
    with pytest.raises(InvalidInput, match="expected the body to be a list: line 1 column 1"):
        list(array_items(JsonStream([b'{"a": 1}']), "the body"))


def test_extra_data_after_the_value_is_refused_at_the_end():
    stream = JsonStream([b"[1] 2"])
    assert list(array_items(stream, "it")) == [1]
    with pytest.raises(InvalidInput, match="extra data after the list: line 1 column 5"):
        stream.end("the list")
