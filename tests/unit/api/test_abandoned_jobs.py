"""The job of a caller that left is canceled, unless the caller means to come back for it."""

from __future__ import annotations

import socket

from api.abandoned_jobs import cancel_abandoned, cancels_when_caller_leaves, wait_for_caller
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
