"""The soak's checks (tests/soak/checks.py) on made-up histories: each finds the violation it is for and passes a
clean run, so no check of `make soak` passes by construction."""

from __future__ import annotations

import json

import requests

from tests.soak import checks
from tests.soak.calls import judge
from tests.soak.evidence import Execution
from tests.soak.history import History
from tests.soak.hooks import Delivery

JOB = "a" * 32


def job(status: str = "succeeded", text: str | None = "xin chào", attempts: int = 1, **extra) -> dict:
    return {"id": JOB, "status": status, "output": {"text": text}, "error": None, "attempts": attempts, **extra}


def delivery(webhook_id: str = "msg_1", answered: int = 200, verified: bool = True, status: str = "succeeded"):
    return Delivery(webhook_id, "job.completed", JOB, None, {"id": JOB, "status": status}, answered, verified)


def test_lost_and_stuck_jobs_are_found():
    assert checks.lost_or_stuck({JOB: job()}) == []
    assert [v["check"] for v in checks.lost_or_stuck({JOB: None})] == ["lost"]
    assert [v["check"] for v in checks.lost_or_stuck({JOB: job("running")})] == ["stuck"]


def test_a_finished_job_that_changes_is_found():
    history = History()
    history.saw_finished(JOB, "succeeded", "xin chào", "chat-stream")
    assert checks.finished_jobs_never_change(history, {JOB: job()}, {JOB: job()}) == []
    told_otherwise = checks.finished_jobs_never_change(history, {JOB: job(text="xin chào xin chào")}, {})
    assert [v["check"] for v in told_otherwise] == ["changed"]
    reread_differs = checks.finished_jobs_never_change(History(), {JOB: job()}, {JOB: job("failed")})
    assert [v["check"] for v in reread_differs] == ["changed"]


def test_an_attempt_run_twice_is_found_unless_a_sigterm_handed_it_back():
    twice = [Execution(JOB, 1, 100), Execution(JOB, 1, 200)]
    assert checks.executions_within_attempts(twice, {JOB: job()}, 3, handed_back_pids={100}) == []
    assert [v["check"] for v in checks.executions_within_attempts(twice, {JOB: job()}, 3, set())] == ["ran twice"]


def test_runs_beyond_the_attempts_or_a_success_never_logged_are_found():
    fourth = [Execution(JOB, attempt, 100 + attempt) for attempt in (1, 2, 3, 4)]
    found = {v["check"] for v in checks.executions_within_attempts(fourth, {JOB: job(attempts=4)}, 3, set())}
    assert found == {"beyond attempts"}
    uncounted = checks.executions_within_attempts([Execution(JOB, 2, 1)], {JOB: job(attempts=1)}, 3, set())
    assert {v["check"] for v in uncounted} == {"beyond attempts", "unlogged run"}


def test_a_cancel_answered_202_whose_job_succeeded_is_found():
    history = History()
    history.canceled(JOB, 202)
    assert checks.cancels_hold(history, {JOB: job("canceled")}) == []
    assert [v["check"] for v in checks.cancels_hold(history, {JOB: job()})] == ["cancel broken"]


def test_webhook_events_undelivered_forged_or_under_two_ids_are_found():
    history = History()
    history.with_webhook(JOB)
    delivered = job(webhook={"state": {"completed": "delivered"}})
    clean = [delivery(answered=500), delivery()]
    assert checks.webhooks_delivered(history, {JOB: delivered}, {}, clean) == []
    two_ids = checks.webhooks_delivered(history, {JOB: delivered}, {}, [delivery("msg_1"), delivery("msg_2")])
    assert [v["check"] for v in two_ids] == ["webhook ids"]
    never_2xx = checks.webhooks_delivered(history, {JOB: delivered}, {}, [delivery(answered=500)])
    assert [v["check"] for v in never_2xx] == ["webhook undelivered"]
    forged = checks.webhooks_delivered(history, {JOB: delivered}, {}, [delivery(verified=False)])
    assert [v["check"] for v in forged] == ["webhook forged"]
    stale = checks.webhooks_delivered(history, {JOB: delivered}, {}, [delivery(status="failed")])
    assert [v["check"] for v in stale] == ["webhook stale"]
    missing = checks.webhooks_delivered(history, {JOB: job(webhook={"state": {"completed": "pending"}})}, {}, [])
    assert {v["check"] for v in missing} == {"webhook undelivered"} and len(missing) == 2


def test_one_key_that_made_two_jobs_is_found_on_routes_that_promise_it():
    history = History()
    history.sent_with_key("POST /jobs", "k")
    history.sent_with_key("POST /jobs", "k")
    history.accepted(JOB, "jobs", ("POST /jobs", "k"))
    assert checks.one_job_per_key(history, ["POST /jobs"]) == []
    history.accepted("b" * 32, "jobs", ("POST /jobs", "k"))
    assert [v["check"] for v in checks.one_job_per_key(history, ["POST /jobs"])] == ["idempotency"]
    assert checks.one_job_per_key(history, ["POST /batches"]) == []
    assert checks.keys_by_route(history, ["POST /jobs"])["POST /jobs"] == {"keys": 1, "sent_twice": 1, "made_two": 1}


def test_batch_counts_that_do_not_add_up_are_found():
    history = History()
    history.accepted_batch("batch_1", lines=2, webhook=False, key=None)
    lines = [{"job_id": JOB}, {"job_id": "b" * 32}]
    final = {JOB: job(), "b" * 32: job("canceled")}
    view = {"total": 2, "counts": {"succeeded": 1, "canceled": 1}, "status": "completed", "completed_at": "now"}
    assert checks.batches_add_up(history, {"batch_1": view}, {"batch_1": lines}, final) == []
    drifted = view | {"counts": {"succeeded": 2, "canceled": 0}}
    assert [v["check"] for v in checks.batches_add_up(history, {"batch_1": drifted}, {"batch_1": lines}, final)] == [
        "batch counts"
    ]
    short = view | {"total": 1}
    assert [v["check"] for v in checks.batches_add_up(history, {"batch_1": short}, {"batch_1": lines}, final)] == [
        "batch counts"
    ]


def test_unnamed_stored_jobs_are_found_unless_the_connection_was_cut():
    history = History()
    history.outcome("soak-jobs-1", "503")
    history.outcome("soak-jobs-2", "ConnectionError")
    listed = [{"id": JOB, "input": {"prompt": "soak-jobs-1 x"}}, {"id": "b" * 32, "input": {"prompt": "soak-jobs-2"}}]
    assert [v["id"] for v in checks.answers_name_stored_jobs(history, listed, set())] == [JOB]
    assert checks.answers_name_stored_jobs(history, listed, {JOB, "b" * 32}) == []


def answer(status: int, body: bytes, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers)
    return response


def test_only_documented_5xx_pass_and_html_errors_are_found():
    history = History()
    judge(history, "POST /jobs", answer(503, b'{"error": {"type": "store_unavailable"}}', **{"Retry-After": "1"}))
    judge(history, "POST /v1/generate", answer(500, b'{"error": {"type": "max_attempts"}}'))
    judge(history, "POST /v1/generate", answer(504, b'{"error": {"type": "timeout", "job_id": "x"}}'))
    assert checks.only_documented_errors(history) == []
    judge(history, "POST /jobs", answer(503, b'{"error": {"type": "store_unavailable"}}'))
    judge(history, "POST /jobs", answer(500, b"<html>Internal Server Error</html>"))
    judge(history, "POST /jobs", answer(500, b'{"error": {"type": "internal_error"}}'))
    assert len(checks.only_documented_errors(history)) == 3


def answer_of(status: int, body: dict, headers: dict | None = None) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content = status, json.dumps(body).encode()
    answer.headers.update(headers or {})
    return answer


def test_the_soak_client_reads_the_job_a_refusal_names():
    """A 503 after the job was stored names it in `Location` (OpenAI-shaped errors too): the client counts the job as
    its own, so the checks hold it to the end; a refusal naming none made none."""
    from tests.soak.clients import Clients

    error = {"error": {"message": "the queue is unreachable", "type": "server_error", "code": "store_unavailable"}}
    assert Clients._named_job(answer_of(503, error, {"Location": "/jobs/" + "a" * 32})) == "a" * 32
    assert Clients._named_job(answer_of(503, error)) is None
    assert Clients._named_job(answer_of(202, {"id": "b" * 32})) == "b" * 32
    assert Clients._named_job(answer_of(200, {"id": "chatcmpl-" + "c" * 32})) == "c" * 32
