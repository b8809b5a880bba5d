"""What `GET /jobs/<id>/events` sends: each server-sent event's name and the model of its data.

The route builds every event's data from these models and the OpenAPI document describes the stream from the same
table, so the two can't drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from core.events.stream import STATUS, TOKEN, StreamEvent
from core.jobs.model import Job, JobStatus
from core.jobs.records import TokenLogprob

COMPLETED = "completed"


class JobStatusEvent(BaseModel):
    """The data of a `status` event of `GET /jobs/<id>/events`."""

    status: JobStatus


class JobTokenEvent(BaseModel):
    """The data of a `token` event: a delta of whole characters; they concatenate to `output.text`."""

    text: str
    logprobs: list[TokenLogprob] | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="For a job with `logprobs`: the records of the tokens this delta completes (the rest come with "
        "the last delta); they concatenate to `output.logprobs`.",
    )


@dataclass(frozen=True)
class JobEventKind:
    """One kind of event: its `event:` name, the model of its `data:`, and whether it has an `id:` to resume after."""

    name: str
    data: type[BaseModel]
    resumable: bool


# In the order a stream sends them: status changes and text, then the finished job (no id: nothing comes after it).
JOB_EVENT_KINDS = (
    JobEventKind(STATUS, JobStatusEvent, resumable=True),
    JobEventKind(TOKEN, JobTokenEvent, resumable=True),
    JobEventKind(COMPLETED, Job, resumable=False),
)


def event_data(event: StreamEvent) -> JobStatusEvent | JobTokenEvent:
    """The data sent for one entry of a job's stream."""
    if event.kind == STATUS:
        return JobStatusEvent(status=event.data["status"])
    return JobTokenEvent(text=event.data["text"], logprobs=event.data.get("logprobs"))
