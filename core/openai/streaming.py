"""Following one job's events (core/events/follow.py) as the chunks of a streamed OpenAI answer.

The text goes out as the worker writes it; the finished job then says how it ended: the finish reason and the
usage (unless the answer adds up several jobs' usage itself: a completion with several prompts), or the error. A
job with n > 1 choices streams choice 0 as it is written; the others follow whole, each under its own `index`, once
the job ends. Nothing here writes to the client: the caller does, and it gets a tick (None) at least every
`tick_s` while nothing happens, to keep the connection alive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import WAIT_TIMED_OUT, ErrorType
from core.events.follow import Completed, JobEvents, KeepAlive
from core.events.stream import STATUS, TOKEN, StreamEvent
from core.jobs.model import Job, JobStatus
from core.jobs.records import TokenLogprob
from core.openai.answers import Chunk, StreamChunks, usage_of
from core.openai.protocol import OpenAIErrorBody, error_body

# The most a follower waits for news before it ticks (and looks at its deadline).
TICK_S = 1.0


@dataclass
class _SentRecords:
    """The logprob records a stream has sent: their count and the length of text their tokens span."""

    count: int = 0
    offset: int = 0

    def add(self, records: list[TokenLogprob]) -> None:
        self.count += len(records)
        self.offset += sum(len(record.token) for record in records)


@dataclass
class CompletionStream:
    """The chunks of one job's streamed answer, for at most `wait_s`; `None` items are ticks."""

    job_id: str
    owner: str
    chunks: StreamChunks
    events: JobEvents
    wait_s: float
    # Whether the job's usage chunk ends the stream (when usage was asked for); False where the caller sends one
    # for several jobs.
    ends_with_usage: bool = True
    # The job as it finished, once the stream has ended with it (None until then, and when it expired).
    finished: Job | None = None

    def __iter__(self) -> Iterator[Chunk | OpenAIErrorBody | None]:
        opening = self.chunks.opening()
        if opening is not None:
            yield opening
        deadline = time.monotonic() + self.wait_s
        # The process's followers, ticking often enough for this stream's deadline.
        events = JobEvents(
            self.events.store, self.events.streams, self.events.listener, keepalive_s=min(TICK_S, self.wait_s)
        )
        sent: list[str] = []
        # The logprob records sent so far (a request with logprobs): how many, and how much text their tokens span
        # (where the next record's token begins).
        sent_records = _SentRecords()
        for item in events.follow(self.job_id, self.owner, None):
            if isinstance(item, Completed):
                self.finished = item.job
                yield from self._ending(item.job, "".join(sent), sent_records)
                return
            if self.chunks.buffered and isinstance(item, StreamEvent) and item.kind == TOKEN:
                pass  # sent from the finished job, token by token, the prompt first
            elif (
                isinstance(item, StreamEvent) and item.kind == TOKEN and (item.data["text"] or "logprobs" in item.data)
            ):
                sent.append(item.data["text"])
                new = [TokenLogprob.model_validate(record) for record in item.data.get("logprobs") or ()]
                yield self.chunks.text(item.data["text"], new, sent_records.offset)
                sent_records.add(new)
            elif isinstance(item, StreamEvent) and item.kind == STATUS and item.data["status"] == "queued" and sent:
                # Its worker died or stopped: the job runs again from the start, and the text sent can't be taken
                # back. The job goes on; its result stays at GET /jobs/<id>.
                yield self._error(
                    "the job went back to the queue after its worker stopped and will start its text again; "
                    f"read its result at /jobs/{self.job_id}",
                    "server_error",
                    ErrorType.ENGINE_FAILED,
                )
                return
            if time.monotonic() >= deadline:
                yield self._error(
                    f"the job did not finish within {self.wait_s:g} s; it goes on: poll /jobs/{self.job_id}",
                    "server_error",
                    WAIT_TIMED_OUT,
                )
                return
            if isinstance(item, KeepAlive):
                yield None
        # The follower ends without the finished job only when the job expired meanwhile.
        yield self._error(f"job {self.job_id} expired", "server_error", ErrorType.NOT_FOUND)

    def _ending(self, job: Job, streamed: str, records: _SentRecords) -> Iterator[Chunk | OpenAIErrorBody]:
        if job.status == JobStatus.SUCCEEDED:
            text = job.output.text if job.output is not None else ""
            missing = (job.output.logprobs or [])[records.count :] if job.output is not None else []
            if self.chunks.buffered:
                yield from self.chunks.per_token(job)
            # The events carry the job's whole text (and logprobs); should a last piece be missing from them, it is
            # sent here.
            elif (len(text) > len(streamed) and text.startswith(streamed)) or missing:
                tail = text[len(streamed) :] if text.startswith(streamed) else ""
                yield self.chunks.text(tail, missing, records.offset)
            yield self.chunks.finish(job.output.finish_reason if job.output is not None else None, job)
            # The events carry choice 0's text only: a job's other choices (n > 1) are sent whole once it ends.
            for choice in (job.output.choices or [])[1:] if job.output is not None else []:
                yield from self.chunks.whole_choice(
                    choice.index, choice.text, choice.finish_reason, job, choice.logprobs or ()
                )
            if self.chunks.include_usage and self.ends_with_usage:
                yield self.chunks.usage(usage_of(job))
        elif job.status == JobStatus.FAILED:
            error = job.error
            invalid = error is not None and error.type == ErrorType.INVALID_INPUT
            message = error.message if error is not None else "generation failed"
            code = error.type if error is not None else ErrorType.ENGINE_FAILED
            yield self._error(message, "invalid_request_error" if invalid else "server_error", code)
        else:
            yield self._error(f"job {self.job_id} was canceled before it finished", "invalid_request_error", "canceled")

    def _error(self, message: str, error_type: str, code: str) -> OpenAIErrorBody:
        return error_body(message, error_type, code=str(code))
