"""A job's events in Redis, for whoever watches it: one Redis Stream per job (JOB_EVENTS_KEY).

Entries, in order: a `status` entry for every status change of the job (staged in the change's own transaction,
so the stream never tells of a status the job does not have), and `token` entries carrying text deltas from the
worker (whole characters, only text the job keeps). A late subscriber replays it from the start: the stream is
capped only above what one attempt of a job can write, and it expires with the job.

A job that goes back to the queue (`running` -> `queued`: its worker died or stopped) runs again from the
start: the text of the attempt before is void. `text_of` applies that rule; a live reader should too.

Every entry is also published, with its id, on the job's channel (JOB_EVENTS_CHANNEL), by the same Lua call that
adds it, so a process that follows many jobs hears new entries without reading Redis once per subscriber.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from core.keys import JOB_EVENTS_CHANNEL, JOB_EVENTS_KEY

STATUS = "status"
TOKEN = "token"
START = "0-0"  # the id before every entry: reading after it replays the whole stream
# Entries besides one attempt's tokens: its status changes and a final remainder, with room to spare.
STATUS_ENTRIES_ROOM = 64

# Adds one entry and publishes it with the id Redis gave it (only a script knows that id inside a transaction).
# KEYS: the stream, the channel. ARGV: kind, value, cap (0: none), "1" to add only to a stream that exists (a token
# must never recreate a stream that has expired with its job: it would have no expiry).
_APPEND = """
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local id
if tonumber(ARGV[3]) > 0 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'kind', ARGV[1], 'value', ARGV[2])
else
  id = redis.call('XADD', KEYS[1], '*', 'kind', ARGV[1], 'value', ARGV[2])
end
redis.call('PUBLISH', KEYS[2], cjson.encode({id, ARGV[1], ARGV[2]}))
return id
"""


@dataclass(frozen=True)
class StreamEvent:
    """One entry of a job's stream."""

    event_id: str  # the Redis Stream entry id: the SSE `id:` and what `Last-Event-ID` resumes after
    kind: str  # "status" | "token"
    data: dict  # {"status": "<job status>"} or {"text": "<delta: whole characters only>"}


def stream_key(job_id: str) -> str:
    return JOB_EVENTS_KEY.format(job_id=job_id)


def channel_of(job_id: str) -> str:
    return JOB_EVENTS_CHANNEL.format(job_id=job_id)


def entries_cap(max_tokens_limit: int) -> int:
    """How many entries a stream keeps at least: one attempt writes at most one token entry per token."""
    return max_tokens_limit + STATUS_ENTRIES_ROOM


def id_order(event_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair (milliseconds, sequence); raises ValueError for anything else."""
    millis, _, sequence = event_id.partition("-")
    return int(millis), int(sequence or 0)


def is_event_id(value: str) -> bool:
    """Whether `value` is a stream id as `read` takes it (`<ms>-<seq>` or `<ms>`, decimal)."""
    millis, _, sequence = value.partition("-")
    return millis.isdigit() and len(millis) <= 20 and (sequence == "" or (sequence.isdigit() and len(sequence) <= 20))


def event_from(event_id: str, kind: str, value: str) -> StreamEvent:
    """The event of one entry, from its id and its two fields."""
    return StreamEvent(event_id, kind, {"status": value} if kind == STATUS else {"text": value})


def event_from_message(payload: str | bytes) -> StreamEvent:
    """The event a channel message carries (as the append script encodes it)."""
    event_id, kind, value = json.loads(payload)
    return event_from(event_id, kind, value)


def stage_status(pipe: redis.client.Pipeline, job_id: str, status: str) -> None:
    """Queue a `status` entry in the transaction that changes the job's status (never trimmed by it)."""
    pipe.eval(_APPEND, 2, stream_key(job_id), channel_of(job_id), STATUS, status, 0, "0")


def stage_expiry(pipe: redis.client.Pipeline, job_id: str, ttl_s: int) -> None:
    """Give the stream the job's expiry, in the same call that starts the job's clock."""
    pipe.expire(stream_key(job_id), ttl_s)


def text_of(events: Iterable[StreamEvent]) -> str:
    """The text the events carry for the job's latest attempt: the deltas after the last `queued` status."""
    parts: list[str] = []
    for event in events:
        if event.kind == TOKEN:
            parts.append(event.data["text"])
        elif event.data.get("status") == "queued":
            parts.clear()  # back on the queue: the next attempt starts its text again
    return "".join(parts)


class TokenStreams:
    """Reads a job's stream, and appends the worker's text deltas to many jobs' streams in one round trip."""

    def __init__(self, client: redis.Redis, *, max_entries: int = entries_cap(4096)) -> None:
        self.client = client
        self.max_entries = max_entries
        self._append = client.register_script(_APPEND)

    def read(self, job_id: str, after: str = START, block_ms: int = 0, count: int = 512) -> list[StreamEvent]:
        """Up to `count` entries after the id `after`, oldest first.

        `block_ms` > 0 waits that long for a first entry when there is none yet (keep it below the client's socket
        timeout); 0 answers at once.
        """
        answer = self.client.xread({stream_key(job_id): after}, count=count, block=block_ms if block_ms > 0 else None)
        if not answer:
            return []
        _key, entries = answer[0]
        return [
            event_from(_text(entry_id), _text(fields[_field("kind", fields)]), _value(fields))
            for entry_id, fields in entries
        ]

    def append_texts(self, deltas: Mapping[str, str]) -> None:
        """Append one `token` entry per job (job id -> delta), all in one pipelined round trip.

        A job whose stream is gone (expired, or never started) gets nothing.
        """
        if not deltas:
            return
        pipe = self.client.pipeline(transaction=False)
        for job_id, text in deltas.items():
            if text:
                self._append(
                    keys=[stream_key(job_id), channel_of(job_id)],
                    args=[TOKEN, text, self.max_entries, "1"],
                    client=pipe,
                )
        pipe.execute()


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _field(name: str, fields: dict) -> str | bytes:
    """The dict key for `name` whether the client decodes answers or not."""
    return name if name in fields else name.encode()


def _value(fields: dict) -> str:
    return _text(fields[_field("value", fields)])
