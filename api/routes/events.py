"""`GET /jobs/<id>/events`: a job's status changes and text as Server-Sent Events, ending with the finished job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack

from flask import Blueprint, Response, stream_with_context

from api.openapi import document
from api.queries import EventsQuery
from api.routes.common import caller, checked_job_id, services
from core.events.follow import Completed, FollowItem, KeepAlive, Lapsed
from core.events.protocol import COMPLETED, event_data

bp = Blueprint("events", __name__)

EVENT_STREAM = "text/event-stream"
# How soon a client whose stream reached SSE_MAX_STREAM_SECONDS reconnects (EventSource's own default is ~3 s).
RECONNECT_MS = 1000


@bp.get("/jobs/<job_id>/events")
@document(tags=("jobs",), query=EventsQuery, answers={200: None}, errors=(401, 404, 422, 429, 503))
def job_events(job_id: str):
    """Watch a job's tokens arrive

    Server-Sent Events: `status` (`{"status"}`) on every status change, `token` (`{"text"}`: a delta of whole
    characters; they concatenate to `output.text`), then `completed` with the job object, and the stream ends.
    Each event's `id` is where a reconnect resumes: send it back as `Last-Event-ID` (or `last_event_id`) to get
    the rest exactly once. A `status` of `queued` after `running` means the job went back to the queue: the
    text streamed so far is void. Quiet streams carry a keep-alive comment every SSE_KEEPALIVE_SECONDS. A key
    has at most MAX_STREAMS_PER_KEY streams open (past it, 429); a stream still open after SSE_MAX_STREAM_SECONDS
    ends with a `retry:` hint, and the client resumes it with `Last-Event-ID`.
    """
    owner = caller()
    svc = services()
    job_id = checked_job_id(job_id)
    after = EventsQuery.read().last_event_id or None
    lifetime_s = svc.settings.sse_max_stream_seconds
    items = svc.job_events.follow(job_id, owner, after, lifetime_s=lifetime_s)
    with ExitStack() as held:
        held.enter_context(svc.stream_slots.held(owner))
        response = Response(stream_with_context(_sse(items)), mimetype=EVENT_STREAM)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # a buffering proxy would hold the tokens back
        # The slot goes back when the server closes the response: at its end, or when the client left.
        response.call_on_close(held.pop_all().close)
    return response


def _sse(items: Iterator[FollowItem]) -> Iterator[str]:
    for item in items:
        if isinstance(item, KeepAlive):
            yield ": keep-alive\n\n"
        elif isinstance(item, Completed):
            yield _frame(COMPLETED, item.job.public_view())
        elif isinstance(item, Lapsed):
            yield f": stream lifetime reached; reconnect with Last-Event-ID\nretry: {RECONNECT_MS}\n\n"
        else:
            yield _frame(item.kind, event_data(item).model_dump(mode="json"), item.event_id)


def _frame(event: str, data: dict, event_id: str = "") -> str:
    """One SSE event; its JSON is on one line (no newline survives json.dumps unescaped)."""
    lines = f"id: {event_id}\n" if event_id else ""
    return f"{lines}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
