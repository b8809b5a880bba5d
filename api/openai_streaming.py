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
from core.jobs.model import Job
from core.openai.answers import StreamChunks, created_at, sent
from core.openai.streaming import CompletionStream
from core.openai.translation import OpenAIRequest


def streamed_answer(
    svc: Services,
    owner: str,
    job: Job,
    request: OpenAIRequest,
    slot: ExitStack,
    sock: socket.socket | None,
    cancels: bool,
) -> Response:
    """The job's answer as server-sent events, holding the wait slot until the end; if `cancels`, a client that
    leaves before the end cancels the job (`sock`, where there is one, tells at once)."""
    chunks = StreamChunks(
        request.endpoint,
        job.id,
        created_at(job),
        svc.settings.served_model_name,
        request.include_usage,
        request.continuous_usage,
        logprobs=request.params.logprobs,
        echo=bool(request.params.echo),
    )
    stream = CompletionStream(job.id, owner, chunks, svc.job_events, svc.settings.sync_wait_seconds)
    keep_alive_s = svc.settings.sse_keepalive_seconds

    left = threading.Event()

    def on_leave() -> None:
        left.set()
        cancel_abandoned(svc, job.id, owner, "streaming")

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
            watch.stop()  # before the answer ends: the connection's next request is gunicorn's to read
            if cancels and not ended and not left.is_set():  # a write failed: the client left unseen by the watch
                cancel_abandoned(svc, job.id, owner, "streaming")

    response = Response(events(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must pass each event on as it comes
    return response


def _event(chunk: BaseModel) -> bytes:
    return b"data: " + json.dumps(sent(chunk), ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
