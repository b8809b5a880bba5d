"""The done-message listener behind synchronous waits: a job's done message wakes the events watching that job, and
only those."""

from __future__ import annotations

from core.jobs.done_listener import CompletionListener
from core.redis.keys import JOB_DONE_CHANNEL


def test_a_done_message_wakes_the_waiters_of_its_job_only(client):
    listener = CompletionListener(client)
    with listener.watching("job-1") as first, listener.watching("job-1") as second, listener.watching("job-2") as other:
        assert listener.waiting() == 2
        client.publish(JOB_DONE_CHANNEL.format(job_id="job-1"), "succeeded")
        assert first.wait(5) and second.wait(5)
        assert not other.wait(0.2)
    assert listener.waiting() == 0


def test_a_waiter_of_a_finished_job_in_the_store_is_woken(new_job, store):
    from core.jobs.model import JobStatus

    job = new_job()
    listener = CompletionListener(store.redis)
    with listener.watching(job.id) as woken:
        store.transition(job.id, JobStatus.CANCELED)
        assert woken.wait(5)
