"""Following one job's event stream (core/token_stream.py) as the chunks of a streamed OpenAI answer.

The text goes out as the worker writes it; once the stream tells of the job's end, the job itself says how it
ended: the finish reason, the usage, or the error. Nothing here writes to the client: the caller does, and between
reads (each waits at most TICK_S) it may look whether its client is still there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from core.errors import ErrorType, StoreUnavailable
from core.jobs import Job, JobStatus
from core.openai_translation import StreamChunks, error_body
from core.store import JobStore
from core.token_stream import START, STATUS, TOKEN, TokenStreams

log = logging.getLogger("llm.api")

# How long one read of the stream waits for news; the caller gets a tick (None) after each empty read.
TICK_S = 0.25
# A job's end is normally heard on its stream; it is also read from the job this often, in case the stream is gone.
JOB_RECHECK_S = 2.0
_TERMINAL = {status.value for status in JobStatus if status.is_terminal}


@dataclass
class CompletionStream:
    """The chunks of one job's streamed answer: `None` items are ticks, yielded after each read with no news."""

    job_id: str
    chunks: StreamChunks
    streams: TokenStreams
    store: JobStore
    wait_s: float

    def __iter__(self) -> Iterator[dict | None]:
        opening = self.chunks.opening()
        if opening is not None:
            yield opening
        sent: list[str] = []
        after = START
        deadline = time.monotonic() + self.wait_s
        recheck_at = time.monotonic() + JOB_RECHECK_S
        while True:
            ended, news = False, False
            try:
                wait_ms = int(min(TICK_S, deadline - time.monotonic()) * 1000)
                events = self.streams.read(self.job_id, after, block_ms=max(wait_ms, 1))
            except redis.RedisError as error:  # Redis away for a moment: the job goes on; try again next tick
                log.warning("stream of job %s unreadable for now: %s", self.job_id, error)
                events = []
                time.sleep(TICK_S)
            for event in events:
                after = event.event_id
                if event.kind == TOKEN and event.data["text"]:
                    sent.append(event.data["text"])
                    news = True
                    yield self.chunks.text(event.data["text"])
                elif event.kind == STATUS and event.data["status"] == JobStatus.QUEUED and sent:
                    # Its worker died or stopped: the job runs again from the start, and the text sent can't be
                    # taken back. The job goes on; its result stays at GET /jobs/<id>.
                    yield self._error(
                        "the job went back to the queue after its worker stopped and will start its text again; "
                        f"read its result at /jobs/{self.job_id}",
                        "server_error",
                        ErrorType.GENERATION_ERROR,
                    )
                    return
                elif event.kind == STATUS and event.data["status"] in _TERMINAL:
                    ended = True
                    break
            if not ended and time.monotonic() >= recheck_at:
                recheck_at = time.monotonic() + JOB_RECHECK_S
                ended = self._job_has_ended()
            if ended:
                yield from self._ending("".join(sent))
                return
            if time.monotonic() >= deadline:
                yield self._error(
                    f"the job did not finish within {self.wait_s:g} s; it goes on: poll /jobs/{self.job_id}",
                    "server_error",
                    ErrorType.TIMEOUT,
                )
                return
            if not news:
                yield None

    def _job_has_ended(self) -> bool:
        try:
            job = self.store.get(self.job_id)
        except StoreUnavailable:
            return False
        return job is None or job.status.is_terminal

    def _ending(self, streamed: str) -> Iterator[dict]:
        job = self.store.get(self.job_id)
        if job is None:
            yield self._error(f"job {self.job_id} expired", "server_error", ErrorType.NOT_FOUND)
        elif job.status == JobStatus.SUCCEEDED:
            yield from self._success(job, streamed)
        elif job.status == JobStatus.FAILED:
            error = job.error
            invalid = error is not None and error.type == ErrorType.INVALID_INPUT
            message = error.message if error is not None else "generation failed"
            code = error.type if error is not None else ErrorType.GENERATION_ERROR
            yield self._error(message, "invalid_request_error" if invalid else "server_error", code)
        else:
            yield self._error(f"job {self.job_id} was canceled before it finished", "invalid_request_error", "canceled")

    def _success(self, job: Job, streamed: str) -> Iterator[dict]:
        text = job.output.text if job.output is not None else ""
        # The stream carries the job's whole text; should a last piece be missing from it, it is sent here.
        if len(text) > len(streamed) and text.startswith(streamed):
            yield self.chunks.text(text[len(streamed) :])
        yield self.chunks.finish(job.output.finish_reason if job.output is not None else None)
        if self.chunks.include_usage:
            yield self.chunks.usage(job)

    def _error(self, message: str, error_type: str, code: str) -> dict:
        return error_body(message, error_type, code=str(code))
