"""The job of a caller that left is canceled, unless the caller means to come back for it."""

from __future__ import annotations

import socket

from api.abandoned_jobs import cancel_abandoned, cancels_when_caller_leaves, wait_for_caller, wait_for_caller_all
from core.owners.ids import owner_id_for_key


def owner_of(api) -> str:
    return owner_id_for_key(api.headers["Authorization"].removeprefix("Bearer "))


def test_only_calls_without_an_idempotency_key_cancel_and_only_when_configured(make_api):
    svc = make_api().app.extensions["llm"]
    assert cancels_when_caller_leaves(svc, None) and not cancels_when_caller_leaves(svc, "key")
    assert not cancels_when_caller_leaves(make_api(cancel_on_disconnect=False).app.extensions["llm"], None)


def test_a_queued_job_of_a_caller_that_left_is_canceled_and_a_finished_one_stays(api, answering_api):
    job_id = api.client.post("/jobs", json={"prompt": "Hi"}, headers=api.headers).get_json()["id"]
    cancel_abandoned(api.app.extensions["llm"], job_id, owner_of(api), "synchronous")
    assert api.store.get(job_id).status == "canceled"
    done = answering_api.client.post("/jobs", json={"prompt": "Hi"}, headers=answering_api.headers).get_json()["id"]
    cancel_abandoned(answering_api.app.extensions["llm"], done, owner_of(answering_api), "synchronous")
    assert answering_api.store.get(done).status == "succeeded"


def test_the_wait_cancels_when_the_callers_socket_closes(make_api):
    api = make_api(sync_wait_seconds=5)
    svc = api.app.extensions["llm"]
    job = svc.submit_job({"prompt": "Hi"}, owner_of(api))
    server_side, client_side = socket.socketpair()
    client_side.close()
    with server_side:
        waited = wait_for_caller(svc, owner_of(api), job, server_side)
    assert waited.status == "canceled"


def test_the_wait_ends_at_sync_wait_seconds_with_the_job_still_queued(make_api):
    api = make_api(sync_wait_seconds=0.2)
    svc = api.app.extensions["llm"]
    job = svc.submit_job({"prompt": "Hi"}, owner_of(api))
    assert wait_for_caller(svc, owner_of(api), job, None).status == "queued"


def test_a_caller_of_several_jobs_that_leaves_cancels_every_one(make_api):
    """A completion with several prompts waits for a job per prompt: the caller leaving cancels them all."""
    api = make_api(sync_wait_seconds=5)
    svc = api.app.extensions["llm"]
    jobs = [svc.submit_job({"prompt": prompt}, owner_of(api)) for prompt in ("One", "Two", "Three")]
    server_side, client_side = socket.socketpair()
    client_side.close()
    with server_side:
        waited = wait_for_caller_all(svc, owner_of(api), jobs, server_side)
    assert [job.status for job in waited] == ["canceled"] * 3


def test_several_jobs_share_one_wait(make_api, monkeypatch):
    """One SYNC_WAIT_SECONDS for all the jobs: each later wait gets what the earlier ones left of it."""
    api = make_api(sync_wait_seconds=0.3)
    svc = api.app.extensions["llm"]
    jobs = [svc.submit_job({"prompt": prompt}, owner_of(api)) for prompt in ("One", "Two", "Three")]
    given: list[float] = []
    until_terminal = svc.waits.until_terminal

    def recording(job_id, timeout_s, **kwargs):
        given.append(timeout_s)
        return until_terminal(job_id, timeout_s, **kwargs)

    monkeypatch.setattr(svc.waits, "until_terminal", recording)
    assert [job.status for job in wait_for_caller_all(svc, owner_of(api), jobs, None)] == ["queued"] * 3
    assert given[0] <= 0.3 and given[1] <= given[0] - 0.2 and given[2] <= given[1]
