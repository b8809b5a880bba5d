"""The `{"requests": [...], "webhook", "metadata"}` batch body, read as a stream like JSONL is.

Its lines are handed on one at a time while the body is read (a 100 MiB envelope once took 25 times its size when
parsed whole), and its other keys are taken wherever they stand, before or after `requests`: the webhook and
metadata are only known once the lines have been read. Any other key is refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from core.batches.json_stream import JsonStream, array_items, object_keys
from core.errors import InvalidInput
from core.jobs.model import check_metadata

ENVELOPE_KEYS = ("requests", "webhook", "metadata")
# A JSONL line's keys: a body whose first key is one of these is JSONL, even if a string in it says "requests".
LINE_KEYS = frozenset({"custom_id", "body", "method", "url"})
_SHOWN_KEY_CHARS = 64


class EnvelopeFields(Protocol):
    """Where the envelope's webhook and metadata are written as they are read."""

    webhook: str | None
    metadata: dict[str, str]


def is_envelope(head: bytes) -> bool:
    """Whether a body starting with `head` (its byte order mark and leading whitespace removed) is an envelope:
    an object whose first key is the envelope's, or names "requests" early and does not start like a JSONL line."""
    if not head.startswith(b"{"):
        return False
    first = _first_key(head.decode("utf-8", errors="replace"))
    if first in ENVELOPE_KEYS:
        return True
    return first not in LINE_KEYS and b'"requests"' in head


def envelope_lines(chunks: Iterable[bytes], fields: EnvelopeFields) -> Iterator[Any]:
    """The envelope's lines, decoded one at a time; its webhook and metadata set on `fields` as they come.

    Raises InvalidInput for a body that is not valid JSON (naming where), an unknown or repeated key, `requests`
    that is not a list or is missing, and a webhook or metadata of the wrong shape.
    """
    stream = JsonStream(chunks)
    seen: set[str] = set()
    for key in object_keys(stream):
        if key not in ENVELOPE_KEYS:
            raise _unknown_key(key)
        if key in seen:
            raise InvalidInput(f"{key}: appears more than once in the batch envelope", field=key)
        seen.add(key)
        if key == "requests":
            if stream.peek() != "[":
                raise InvalidInput("requests: must be a list of batch lines", field="requests")
            yield from array_items(stream, "requests")
        elif key == "webhook":
            webhook = stream.value("in webhook")
            if webhook is not None and not isinstance(webhook, str):
                raise InvalidInput("webhook: must be a URL string", field="webhook")
            fields.webhook = webhook
        else:
            fields.metadata = check_metadata(stream.value("in metadata") or {})
    stream.end("the batch envelope")
    if "requests" not in seen:
        raise InvalidInput('requests: the batch envelope has no "requests" list', field="requests")


def _unknown_key(key: str) -> InvalidInput:
    shown = json.dumps(key[:_SHOWN_KEY_CHARS])  # escapes what can't be written back (a lone surrogate, NUL)
    if len(key) > _SHOWN_KEY_CHARS:
        shown = f'{shown[:-1]}..."'
    known = ", ".join(ENVELOPE_KEYS)
    safe = key.isprintable() and len(key) <= _SHOWN_KEY_CHARS
    return InvalidInput(f"{shown}: not a key of the batch envelope (it takes {known})", field=key if safe else None)


def _first_key(head: str) -> str | None:
    position = 1
    while position < len(head) and head[position] in " \t\r\n":
        position += 1
    try:
        key, _ = json.JSONDecoder().raw_decode(head, position)
    except (json.JSONDecodeError, RecursionError):
        return None  # not a key, or one longer than the head: the "requests" sniff decides
    return key if isinstance(key, str) else None
