"""A strict Server-Sent Events reader for the tests: every event's bytes must be valid UTF-8."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SseEvent:
    event: str | None  # None for a comment-only block (a keep-alive)
    id: str | None
    data: Any  # the JSON of the data line

    @property
    def text(self) -> str:
        return self.data["text"]


def parse_block(block: bytes) -> SseEvent:
    """One event; raises UnicodeDecodeError on a broken UTF-8 sequence."""
    fields: dict[str, str] = {}
    for line in block.decode("utf-8", errors="strict").split("\n"):
        if line.startswith(":") or not line:
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    return SseEvent(fields.get("event"), fields.get("id"), json.loads(fields["data"]) if "data" in fields else None)


def events_of(chunks: Iterable[bytes]) -> Iterator[SseEvent]:
    """The events in a byte stream, as each one completes (keep-alive comments included)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            yield parse_block(block)


def text_of(events: Iterable[SseEvent]) -> str:
    return "".join(event.text for event in events if event.event == "token")
