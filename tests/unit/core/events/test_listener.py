"""The event listener of a process: each published token entry reaches the inboxes following its job, a status
change tells them to read the stream, and an inbox hands over everything it holds at once."""

from __future__ import annotations

import json
import threading

from core.events.listener import Inbox, JobEventListener
from core.events.stream import StreamEvent
from core.redis.keys import JOB_EVENTS_CHANNEL


def test_an_inbox_hands_over_everything_in_order_or_none_after_its_timeout():
    inbox = Inbox()
    assert inbox.take(0.01) is None
    first = StreamEvent("1-0", "token", {"text": "a"})
    inbox.put(first)
    inbox.put(None)
    assert inbox.take(1) == [first, None]
    assert inbox.take(0.01) is None


def test_an_inbox_wakes_a_taker_waiting_in_another_thread():
    inbox = Inbox()
    taken = []
    taker = threading.Thread(target=lambda: taken.append(inbox.take(5)))
    taker.start()
    inbox.put(None)
    taker.join(5)
    assert taken == [[None]]


def test_published_entries_reach_the_followers_of_their_job(client):
    listener = JobEventListener(client)
    with listener.following("job-1") as inbox, listener.following("job-2") as other:
        assert listener.followers() == 2
        assert inbox.take(1) == [None]  # subscribed: read the stream once
        client.publish(JOB_EVENTS_CHANNEL.format(job_id="job-1"), json.dumps(["7-1", "token", "hi"]))
        client.publish(JOB_EVENTS_CHANNEL.format(job_id="job-1"), json.dumps([None, "status", "succeeded"]))
        received: list = []
        while len(received) < 2 and (items := inbox.take(5)) is not None:
            received.extend(items)
        assert received == [StreamEvent("7-1", "token", {"text": "hi"}), None]
        assert [item for item in other.take(0.1) or [] if item is not None] == []  # at most a call to read
    assert listener.followers() == 0
