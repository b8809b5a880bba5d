"""A streamed OpenAI answer (`stream: true`) as server-sent events, and the cancel of a job whose client left."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

from flask import Response
from pydantic import BaseModel

from api.abandoned_jobs import cancel_abandoned
from api.client_connection import DepartureWatch
from api.services import Services
from core.jobs.model import Job, JobStatus
from core.openai.answers import StreamChunks, created_at, sent, total_usage
from core.openai.streaming import CompletionStream
from core.openai.translation import OpenAIRequest


def streamed_answer(
    svc: Services,
    owner: str,
    jobs: list[Job],
    request: OpenAIRequest,
    slot: ExitStack,
    sock: socket.socket | None,
    cancels: bool,
) -> Response:
    """The jobs' answer as server-sent events, holding the wait slot until the end; if `cancels`, a client that
    leaves before the end cancels the jobs (`sock`, where there is one, tells at once).

    One job per prompt: a completion with several prompts streams prompt i's job after prompt i - 1's, its choices
    under indexes i * n to i * n + n - 1 (all of them run on the worker meanwhile), within one SYNC_WAIT_SECONDS,
    and ends with one usage chunk for all (when asked for)."""
    first = jobs[0]
    choices_per_job = request.generations[0].choice_count
    deadline = time.monotonic() + svc.settings.sync_wait_seconds

    def stream_of(position: int, job: Job) -> CompletionStream:
        chunks = StreamChunks(
            request.endpoint,
            first.id,
            created_at(first),
            svc.settings.served_model_name,
            request.include_usage,
            request.continuous_usage,
            logprobs=request.generations[position].logprobs,
            echo=bool(request.generations[position].echo),
            first_index=position * choices_per_job,
        )
        wait_s = max(0.0, deadline - time.monotonic())
        return CompletionStream(job.id, owner, chunks, svc.job_events, wait_s, ends_with_usage=len(jobs) == 1)

    keep_alive_s = svc.settings.sse_keepalive_seconds
    left = threading.Event()

    def cancel_all() -> None:
        for job in jobs:
            cancel_abandoned(svc, job.id, owner, "streaming")

    def on_leave() -> None:
        left.set()
        cancel_all()

    def events() -> Iterator[bytes]:
        ended = False
        watch = DepartureWatch(sock, on_leave).start()
        try:
            with slot:
                last_write = time.monotonic()
                finished: list[Job] = []  # the jobs streamed to their end, in prompt order
                for position, job in enumerate(jobs):
                    stream = stream_of(position, job)
                    for chunk in stream:
                        if chunk is not None:
                            last_write = time.monotonic()
                            yield _event(chunk)
                        elif time.monotonic() - last_write >= keep_alive_s:
                            last_write = time.monotonic()
                            yield b": keep-alive\n\n"
                    if stream.finished is None or stream.finished.status != JobStatus.SUCCEEDED:
                        break  # its error ended the answer
                    finished.append(stream.finished)
                else:
                    if len(jobs) > 1 and request.include_usage:
                        yield _event(stream.chunks.usage(total_usage(finished)))
                ended = True
                yield b"data: [DONE]\n\n"
        finally:
            watch.stop()  # before the answer ends: the connection's next request is gunicorn's to read
            if cancels and not ended and not left.is_set():  # a write failed: the client left unseen by the watch
                cancel_all()

    response = Response(events(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must pass each event on as it comes
    return response


def _event(chunk: BaseModel) -> bytes:
    return b"data: " + json.dumps(sent(chunk), ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
