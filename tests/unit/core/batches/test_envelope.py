"""The `{"requests": [...]}` envelope read as a stream: the same lines as a whole parse, its keys in any order, any
other key refused by name, malformed JSON refused saying where, whatever the chunks' sizes."""

from __future__ import annotations

import json

import pytest

from core.batches.envelope import envelope_lines, is_envelope
from core.batches.lines import read_batch_body, validate_batch_lines
from core.errors import InvalidInput

CHUNK_SIZES = (1, 2, 3, 7, 64, 1 << 20)

# Strings with every JSON escape, brackets, commas, colons and quotes inside them, multi-byte characters (split by
# small chunks mid-character), nested objects and lists, and values of every kind.
TRICKY_LINES = [
    {"custom_id": 'a"}]{[,:\\', "body": {"prompt": '{"x": [1, 2]} ] } , : \\" \\\\', "max_tokens": 4}},
    {"custom_id": "escapes", "body": {"prompt": '"\\/\b\f\n\r\t \u0041 \u00e9 \u2028 \U0001f600', "stop": ["]}"]}},
    {"custom_id": "câu 😀 số", "body": {"messages": [{"role": "user", "content": "tiếng Việt {[ ]}"}]}},
    {"custom_id": "nested", "body": {"prompt": "p", "metadata": {"k": "v"}, "x": [[{"y": [{}]}], [], {}]}},
    {"custom_id": "scalars", "body": {"n": -12.5e3, "t": True, "f": False, "z": None, "big": 123456789012345}},
    12345,
    "a string line",
    None,
    [],
    {},
]


class Fields:
    def __init__(self, webhook: str | None = None) -> None:
        self.webhook = webhook
        self.metadata: dict[str, str] = {}


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read_envelope(data: bytes, size: int = 7, webhook: str | None = None) -> tuple[list, Fields]:
    fields = Fields(webhook)
    return list(envelope_lines(chunked(data, size), fields)), fields


def refusal(data: bytes, size: int = 3) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        read_envelope(data, size)
    return refused.value


@pytest.mark.parametrize("indent", [None, 1])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_the_lines_are_those_of_a_whole_parse_whatever_the_chunks(ensure_ascii, indent):
    envelope = {"webhook": "https://example.com/h", "requests": TRICKY_LINES, "metadata": {"k": "v"}}
    data = json.dumps(envelope, ensure_ascii=ensure_ascii, indent=indent).encode()
    for size in range(1, len(data) + 1):  # every place a chunk can end, with more or less held before it
        lines, fields = read_envelope(data, size)
        assert lines == TRICKY_LINES == json.loads(data)["requests"], size
        assert fields.webhook == "https://example.com/h" and fields.metadata == {"k": "v"}


def test_webhook_and_metadata_may_come_before_or_after_the_lines_and_override_the_query():
    lines, fields = read_envelope(b'{"metadata": {"a": "b"}, "requests": [{}], "webhook": "https://h.example/x"}')
    assert lines == [{}] and fields.metadata == {"a": "b"} and fields.webhook == "https://h.example/x"
    _, fields = read_envelope(b'{"requests": [], "webhook": null}', webhook="https://query.example/")
    assert fields.webhook is None  # the envelope's own, even null, takes precedence
    _, fields = read_envelope(b'\xef\xbb\xbf \n{"requests": [], "metadata": null}', webhook="https://query.example/")
    assert fields.webhook == "https://query.example/" and fields.metadata == {}


def test_an_unknown_key_is_refused_by_name_wherever_it_stands():
    for data in (b'{"requests": [{}], "defaults": {}}', b'{"defaults": {}, "requests": [{}]}'):
        error = refusal(data)
        assert error.field == "defaults" and '"defaults": not a key of the batch envelope' in error.message
    unsafe = refusal(b'{"requests": [], "\\ud800\\u0000": 1}')
    assert unsafe.field is None and '"\\ud800\\u0000"' in unsafe.message  # escaped, never written back raw
    long = refusal(b'{"' + b"k" * 10_000 + b'": 1, "requests": []}', size=4096)
    assert len(long.message) < 200 and long.field is None


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (b'{"requests": [], "requests": [{}]}', "requests", "more than once"),
        (b'{"requests": {"custom_id": "a"}}', "requests", "must be a list"),
        (b'{"webhook": "https://h.example/"}', "requests", 'no "requests"'),
        (b"{}", "requests", 'no "requests"'),
        (b'{"requests": [], "webhook": 5}', "webhook", "must be a URL string"),
        (b'{"requests": [], "metadata": {"k": 1}}', "metadata", "metadata:"),
    ],
)
def test_envelope_fields_of_the_wrong_shape_are_refused_naming_them(data, field, words):
    error = refusal(data)
    assert error.field == field and words in error.message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"requests": [{"custom_id": "a"},\n {"custom_id": "b" "body": {}}]}', "Expecting ',' delimiter"),
        (b'{"requests": [{"a": 1},\n\n  {"b": tru}]}', "Expecting value"),
        (b'{"requests": [1,,2]}', "Expecting value"),
        (b'{"requests": [1,]}', "Expecting value"),
        (b'{"requests": [{"a": "x\\q"}]}', "Invalid \\escape"),
        (b'{"requests": [{"a": "line\nbreak"}]}', "Invalid control character"),
    ],
)
def test_malformed_json_in_a_line_is_refused_where_json_would_say(data, words):
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(data)
    where = f"line {whole.value.lineno} column {whole.value.colno} (character {whole.value.pos})"
    for size in range(1, len(data) + 1):
        error = refusal(data, size)
        assert error.message.startswith("the body is not valid JSON: ") and words in error.message
        assert where in error.message, (size, error.message)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"requests": [{}, {}', "expected ',' or ']' after the batch's line 2: the end of the body"),
        (b'{"requests": ["abc', "Unterminated string starting at: line 1 column 15"),
        (b'{"requests": [{} {}]}', "expected ',' or ']' after the batch's line 1: line 1 column 18"),
        (b'{"requests": []} {"requests": []}', "extra data after the batch envelope: line 1 column 18"),
        (b'{"requests": [], }', "expected a key in double quotes: line 1 column 18"),
        (b"{requests: []}", "expected a key in double quotes: line 1 column 2"),
        (b'{"requests" []}', "expected ':' after a key: line 1 column 13"),
        (b'{"requests": [' + b"[" * 100_000 + b"]}", "nested too deeply: line 1 column 15"),
    ],
)
def test_a_malformed_envelope_is_refused_saying_where(data, words):
    assert words in refusal(data).message


@pytest.mark.parametrize(
    ("head", "envelope"),
    [
        (b'{"requests": []}', True),
        (b'{"webhook": "https://h.example/", "requests": []}', True),
        (b'{"metadata": {}}', True),
        (b'{"defaults": {}, "requests": []}', True),  # so its unknown key is refused by name
        (b'{"custom_id": "requests", "body": {"prompt": "a"}}\n', False),
        (b'{"body": {"prompt": "\\"requests\\""}, "custom_id": "a"}\n', False),
        (b'{"prompt": "a"}\n', False),
        (b"[]", False),
    ],
)
def test_an_envelope_is_told_from_jsonl_by_its_first_key(head, envelope):
    assert is_envelope(head) is envelope


def test_jsonl_whose_first_line_names_requests_is_read_as_jsonl():
    lines = [{"custom_id": "requests", "body": {"prompt": "a"}}, {"custom_id": "b", "body": {"prompt": "b"}}]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    body = read_batch_body(iter(chunked(data, 16)), None)
    read = validate_batch_lines(body.items, max_tokens_limit=64, max_prompt_chars=100)
    assert [line.custom_id for line in read] == ["requests", "b"]
