"""A job's events in Redis, for whoever watches it: one Redis Stream per job (JOB_EVENTS_KEY).

Entries, in order: a `status` entry for every status change of a job that has run (staged in the change's own
transaction, so the stream never tells of a status the job does not have), and `token` entries carrying text deltas
from the worker (whole characters, only text the job keeps). The stream starts with the job's first run; a job
canceled while queued writes no entry (it has no text; its followers are told on the channel and end with the job).
A late subscriber replays it from the start: the stream is capped only above what one attempt of a job can write,
and it expires with the job.

A job that goes back to the queue (`running` -> `queued`: its worker died or stopped) runs again from the
start: the text of the attempt before is void. `text_of` applies that rule; a live reader should too. Only the
running attempt may add text (JOB_EVENTS_WRITER_KEY): one that was superseded while its worker was paused writes
nothing after the `queued` status, so the next attempt's text is never mixed with its.

Every entry is also published on the job's channel (JOB_EVENTS_CHANNEL), so a process that follows many jobs hears
them without reading Redis once per subscriber: a token entry with its id (the Lua call that adds it knows it), a
status change without one (a transaction can't know its entry's id; followers read the stream for it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from core.redis.keys import JOB_EVENTS_CHANNEL, JOB_EVENTS_KEY, JOB_EVENTS_WRITER_KEY

STATUS = "status"
TOKEN = "token"
START = "0-0"  # the id before every entry: reading after it replays the whole stream
# Entries besides one attempt's tokens: its status changes and a final remainder, with room to spare.
STATUS_ENTRIES_ROOM = 64
# A stream id: milliseconds, then a sequence number; 19 digits each keeps both below Redis's limit of 2**64.
EVENT_ID_PATTERN = re.compile("[0-9]{1,19}(-[0-9]{1,19})?")

# Adds one token entry, capped, to a stream that exists, and publishes it with the id Redis gave it, if the writer is
# the job's running attempt. A token must never recreate a stream that has expired with its job: it would have no
# expiry. KEYS: the stream, the channel, the running attempt. ARGV: the text, the cap, the writer's attempt.
_APPEND_TOKEN = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return false
end
local id
if ARGV[4] == '' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'kind', 'token', 'value', ARGV[1])
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'kind', 'token', 'value', ARGV[1], 'logprobs', ARGV[4])
end
redis.call('PUBLISH', KEYS[2], cjson.encode({id, 'token', ARGV[1], ARGV[4]}))
return id
"""


@dataclass(frozen=True)
class StreamEvent:
    """One entry of a job's stream."""

    event_id: str  # the Redis Stream entry id: the SSE `id:` and what `Last-Event-ID` resumes after
    kind: str  # "status" | "token"
    # {"status": "<job status>"} or {"text": "<delta: whole characters only>"}, with "logprobs" (the records of the
    # delta's tokens, core/jobs/records.py TokenLogprob) for a job that asked for them
    data: dict


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
    """Whether `value` is a stream id as clients send it back (`<ms>-<seq>` or `<ms>`, as EVENT_ID_PATTERN says)."""
    return EVENT_ID_PATTERN.fullmatch(value) is not None


def event_from(event_id: str, kind: str, value: str, logprobs: str = "") -> StreamEvent:
    """The event of one entry, from its id and its fields (a token's logprobs as JSON, or empty)."""
    if kind == STATUS:
        return StreamEvent(event_id, kind, {"status": value})
    return StreamEvent(
        event_id, kind, {"text": value, "logprobs": json.loads(logprobs)} if logprobs else {"text": value}
    )


def event_from_message(payload: str | bytes) -> StreamEvent | None:
    """The event a channel message carries, or None for a status change (its entry is read from the stream)."""
    event_id, kind, value, *logprobs = json.loads(payload)
    return event_from(event_id, kind, value, *logprobs) if event_id else None


def writer_key(job_id: str) -> str:
    return JOB_EVENTS_WRITER_KEY.format(job_id=job_id)


def stage_status(pipe: redis.client.Pipeline, job_id: str, status: str, *, attempt: int, entry: bool = True) -> None:
    """Queue, in the transaction that changes the job's status, its `status` entry (never trimmed by it), the word
    to followers (with `entry` False, only the word), and which attempt may add text: `attempt` while it runs,
    none otherwise."""
    if status == "running":
        pipe.set(writer_key(job_id), attempt)
    else:
        pipe.delete(writer_key(job_id))
    if entry:
        pipe.xadd(stream_key(job_id), {"kind": STATUS, "value": status})
    pipe.publish(channel_of(job_id), json.dumps([None, STATUS, status]))


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
        self._append_sha: str | None = None

    def read(self, job_id: str, after: str = START, block_ms: int = 0, count: int = 512) -> list[StreamEvent]:
        """Up to `count` entries after the id `after`, oldest first.

        `block_ms` > 0 waits that long for a first entry when there is none yet (keep it below the client's socket
        timeout); 0 answers at once.
        """
        answer = self.client.xread({stream_key(job_id): after}, count=count, block=block_ms if block_ms > 0 else None)
        if not answer:
            return []
        _key, entries = answer[0]
        return [_entry_event(entry_id, fields) for entry_id, fields in entries]

    def last(self, job_id: str) -> StreamEvent | None:
        """The stream's newest entry, if any."""
        entries = self.client.xrevrange(stream_key(job_id), count=1)
        if not entries:
            return None
        return _entry_event(*entries[0])

    def append_texts(self, deltas: Mapping[tuple[str, int], str | tuple[str, list[dict]]]) -> None:
        """Append one `token` entry per job attempt ((job id, attempt) -> delta, or (delta, the logprob records of
        its tokens)), all in one pipelined round trip.

        A job whose stream is gone (expired, or never started), or that no longer runs that attempt, gets nothing.
        """
        deltas = {
            writer: delta
            for writer, delta in deltas.items()
            if (delta if isinstance(delta, str) else delta[0] or delta[1])
        }
        if not deltas:
            return
        if self._append_sha is None:
            self._append_sha = self.client.script_load(_APPEND_TOKEN)
        pipe = self.client.pipeline(transaction=False)
        for (job_id, attempt), delta in deltas.items():
            keys = (stream_key(job_id), channel_of(job_id), writer_key(job_id))
            text, logprobs = (delta, "") if isinstance(delta, str) else (delta[0], json.dumps(delta[1]))
            pipe.evalsha(self._append_sha, len(keys), *keys, text, self.max_entries, attempt, logprobs)
        results = pipe.execute(raise_on_error=False)
        if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            # Redis restarted (or its scripts were flushed): none of them ran; load the script and send them again.
            self._append_sha = None
            self.append_texts(deltas)
            return
        for result in results:
            if isinstance(result, Exception):
                raise result


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _field(name: str, fields: dict) -> str | bytes:
    """The dict key for `name` whether the client decodes answers or not."""
    return name if name in fields else name.encode()


def _value(fields: dict, name: str = "value") -> str:
    key = _field(name, fields)
    return _text(fields[key]) if key in fields else ""


def _entry_event(entry_id: str | bytes, fields: dict) -> StreamEvent:
    return event_from(
        _text(entry_id), _text(fields[_field("kind", fields)]), _value(fields), _value(fields, "logprobs")
    )
