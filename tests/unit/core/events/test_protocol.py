"""The events of `GET /jobs/<id>/events` (core/events/protocol.py): each stream entry's data built by its model, and
the table the OpenAPI document is made from."""

from __future__ import annotations

import pytest

from core.events.protocol import COMPLETED, JOB_EVENT_KINDS, JobStatusEvent, JobTokenEvent, event_data
from core.events.stream import STATUS, TOKEN, StreamEvent
from core.jobs.model import Job, JobStatus


def test_a_status_entry_becomes_a_status_event_and_a_token_entry_a_text_delta():
    status = event_data(StreamEvent(event_id="1-0", kind=STATUS, data={"status": "running"}))
    assert isinstance(status, JobStatusEvent) and status.status is JobStatus.RUNNING
    assert status.model_dump(mode="json") == {"status": "running"}
    token = event_data(StreamEvent(event_id="2-0", kind=TOKEN, data={"text": "Xin chào"}))
    assert isinstance(token, JobTokenEvent) and token.model_dump(mode="json") == {"text": "Xin chào"}


def test_a_status_outside_the_table_is_refused():
    with pytest.raises(ValueError):
        event_data(StreamEvent(event_id="1-0", kind=STATUS, data={"status": "exploded"}))


def test_the_kinds_in_the_order_a_stream_sends_them_and_only_the_last_without_an_id():
    assert [kind.name for kind in JOB_EVENT_KINDS] == [STATUS, TOKEN, COMPLETED]
    assert [kind.resumable for kind in JOB_EVENT_KINDS] == [True, True, False]
    assert JOB_EVENT_KINDS[-1].data is Job
