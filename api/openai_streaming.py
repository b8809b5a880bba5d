"""A streamed OpenAI answer (`stream: true`) as server-sent events, and the cancel of a job whose client left."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

from flask import Response

from api.client_connection import DepartureWatch
from api.services import Services
from core.completion_stream import CompletionStream
from core.errors import JobNotFound, StoreUnavailable, WrongState
from core.jobs import Job
from core.openai_translation import OpenAIRequest, StreamChunks, created_at

log = logging.getLogger("llm.api")


def streamed_answer(
    svc: Services, owner: str, job: Job, request: OpenAIRequest, slot: ExitStack, sock: socket.socket | None
) -> Response:
    """The job's answer as server-sent events, holding the wait slot until the end; a client that leaves before
    the end cancels the job."""
    chunks = StreamChunks(
        request.endpoint, job.id, created_at(job), svc.settings.served_model_name, request.include_usage
    )
    stream = CompletionStream(job.id, owner, chunks, svc.job_events, svc.settings.sync_wait_seconds)
    keep_alive_s = svc.settings.sse_keepalive_seconds

    left = threading.Event()

    def on_leave() -> None:
        left.set()
        _cancel_quietly(svc, job.id, owner)

    def events() -> Iterator[bytes]:
        ended = False
        watch = DepartureWatch(sock, on_leave).start()
        try:
            with slot:
                last_write = time.monotonic()
                for chunk in stream:
                    if chunk is not None:
                        last_write = time.monotonic()
                        yield _event(chunk)
                    elif time.monotonic() - last_write >= keep_alive_s:
                        last_write = time.monotonic()
                        yield b": keep-alive\n\n"
                ended = True
                yield b"data: [DONE]\n\n"
        finally:
            watch.stop()
            if not ended and not left.is_set():  # a write failed: the client left without the watch seeing it
                _cancel_quietly(svc, job.id, owner)

    response = Response(events(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must pass each event on as it comes
    return response


def _event(chunk: dict) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _cancel_quietly(svc: Services, job_id: str, owner: str) -> None:
    """Cancel the job of a client that left; one that has finished meanwhile stays as it is."""
    try:
        svc.cancel_job(job_id, owner)
        log.info("job %s canceled: its streaming client left", job_id)
    except (WrongState, JobNotFound):
        pass
    except StoreUnavailable as error:
        log.warning("job %s: its streaming client left, but the cancel failed: %s", job_id, error)
