"""The one pub/sub connection per process: each message on a job's channel reaches the subscribers registered for
that job only, and every subscription tells the subclass to catch up."""

from __future__ import annotations

import threading

from core.jobs.channel_listener import JobChannelListener

CHANNEL = "test:unit-channel:{job_id}"


class Mailbox:
    """One subscriber: the messages it was handed."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []


class Recorder(JobChannelListener[Mailbox]):
    """Keeps every message in its subscriber's list, and counts subscriptions."""

    def __init__(self, client) -> None:
        super().__init__(client, CHANNEL, name="test", after_outage="nothing")
        self.resubscribed = 0
        self.heard = threading.Event()

    def _message(self, job_id: str, data: str) -> None:
        for mailbox in self._subscribers_of(job_id):
            mailbox.messages.append((job_id, data))
        self.heard.set()

    def _resubscribed(self) -> None:
        self.resubscribed += 1


def publish_and_wait(client, listener: Recorder, job_id: str, data: str) -> None:
    listener.heard.clear()
    client.publish(CHANNEL.format(job_id=job_id), data)
    assert listener.heard.wait(5)


def test_a_message_reaches_only_the_subscribers_of_its_job(client):
    listener = Recorder(client)
    first, second, other = Mailbox(), Mailbox(), Mailbox()
    registered = (listener._registered("job-1", first), listener._registered("job-1", second))
    with registered[0], registered[1], listener._registered("job-2", other):
        assert listener.resubscribed == 1  # registering waited for the subscription
        assert listener._jobs_followed() == 2 and listener._subscriber_count() == 3
        publish_and_wait(client, listener, "job-1", "hello")
    assert first.messages == second.messages == [("job-1", "hello")] and other.messages == []


def test_a_subscriber_hears_nothing_once_its_block_ends(client):
    listener = Recorder(client)
    mailbox = Mailbox()
    with listener._registered("job-1", mailbox):
        pass
    assert listener._jobs_followed() == 0 and listener._all_subscribers() == []
    with listener._registered("job-3", Mailbox()):
        publish_and_wait(client, listener, "job-1", "late")
    assert mailbox.messages == []


def test_a_job_id_with_the_channels_separator_in_it_is_read_whole(client):
    listener = Recorder(client)
    mailbox = Mailbox()
    with listener._registered("job:with:colons", mailbox):
        publish_and_wait(client, listener, "job:with:colons", "x")
    assert mailbox.messages == [("job:with:colons", "x")]


def test_one_listening_thread_per_process_however_many_subscribe(client):
    listener = Recorder(client)
    before = threading.active_count()
    for n in range(5):
        with listener._registered(f"job-{n}", Mailbox()):
            pass
    assert threading.active_count() == before + 1 and listener.resubscribed == 1
