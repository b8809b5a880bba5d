"""The soak's Jepsen-style checks: what the clients were told, what the service holds, and what it ran (the
execution log) must agree. Each check returns the violations it found, as dicts naming the check and the id."""

from __future__ import annotations

import collections
from collections.abc import Iterable

from tests.soak.evidence import TERMINAL, Execution
from tests.soak.history import History
from tests.soak.hooks import Delivery


def violation(check: str, subject: str, detail: str) -> dict:
    return {"check": check, "id": subject, "detail": detail}


def lost_or_stuck(final: dict[str, dict | None]) -> list[dict]:
    """Every accepted job is still found, and finished."""
    found = []
    for job_id, job in final.items():
        if job is None:
            found.append(violation("lost", job_id, "an accepted job is gone (404)"))
        elif job["status"] not in TERMINAL:
            found.append(violation("stuck", job_id, f"still {job['status']} after quiescence"))
    return found


def _text(job: dict) -> str | None:
    return (job.get("output") or {}).get("text")


def finished_jobs_never_change(history: History, final: dict, reread: dict) -> list[dict]:
    """What a client saw finished (a poll, a synchronous answer, a stream's end) is what the service still holds,
    and a re-read after a pause finds it unchanged."""
    found = []
    for job_id, seen in history.sightings.items():
        job = final.get(job_id)
        if job is None:
            continue
        if seen.status != job["status"] or (seen.text is not None and seen.text != _text(job)):
            found.append(violation("changed", job_id, f"{seen.seen_by} saw {seen.status} {seen.text!r}, "
                                   f"now {job['status']} {_text(job)!r}"))  # fmt: skip
    for job_id, job in final.items():
        later = reread.get(job_id)
        if job is None or later is None or job["status"] not in TERMINAL:
            continue
        before = (job["status"], _text(job), job.get("error"), job.get("attempts"))
        after = (later["status"], _text(later), later.get("error"), later.get("attempts"))
        if before != after:
            found.append(violation("changed", job_id, f"{before} became {after}"))
    return found


def executions_within_attempts(
    executions: Iterable[Execution], final: dict[str, dict | None], max_attempts: int, handed_back_pids: set[int]
) -> list[dict]:
    """No job runs beyond its attempts: each attempt runs once (twice only when a worker that got SIGTERM handed
    it back uncounted), no attempt exceeds MAX_ATTEMPTS or the job's own count, and a finished job that ran shows
    its last attempt in the log."""
    found = []
    by_attempt: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    for execution in executions:
        by_attempt[(execution.job_id, execution.attempt)].append(execution.pid)
    attempts_run: dict[str, set[int]] = collections.defaultdict(set)
    for (job_id, attempt), pids in by_attempt.items():
        attempts_run[job_id].add(attempt)
        if any(pid not in handed_back_pids for pid in pids[:-1]):
            found.append(violation("ran twice", job_id, f"attempt {attempt} ran {len(pids)} times (pids {pids})"))
        if attempt > max_attempts:
            found.append(violation("beyond attempts", job_id, f"attempt {attempt} > MAX_ATTEMPTS {max_attempts}"))
    for job_id, job in final.items():
        if job is None:
            continue
        ran = attempts_run.get(job_id, set())
        if ran and max(ran) > job["attempts"]:
            found.append(violation("beyond attempts", job_id, f"ran attempt {max(ran)}, job counts {job['attempts']}"))
        if job["status"] == "succeeded" and job["attempts"] not in ran:
            found.append(violation("unlogged run", job_id, f"succeeded on attempt {job['attempts']}, not logged"))
    return found


def cancels_hold(history: History, final: dict[str, dict | None]) -> list[dict]:
    """A cancel answered 200 or 202 always ends the job canceled."""
    found = []
    for job_id, answer in history.cancels.items():
        job = final.get(job_id)
        if answer in (200, 202) and job is not None and job["status"] != "canceled":
            found.append(violation("cancel broken", job_id, f"cancel answered {answer}, job ended {job['status']}"))
    return found


def webhooks_delivered(
    history: History, final: dict[str, dict | None], batches: dict[str, dict | None], deliveries: list[Delivery]
) -> list[dict]:
    """Every event a job or batch raised reached the receiver, signed, under one webhook id (retries repeat it),
    and was answered 2xx at least once; a job's `job.completed` carries its final status."""
    found = []
    events: dict[tuple[str, str, int | None], list[Delivery]] = collections.defaultdict(list)
    for delivery in deliveries:
        events[(delivery.subject_id, delivery.event_type, delivery.attempt_of_job)].append(delivery)
        if not delivery.verified:
            found.append(violation("webhook forged", delivery.subject_id, f"{delivery.webhook_id} does not verify"))
    for (subject, event_type, _), sent in events.items():
        ids = {delivery.webhook_id for delivery in sent}
        if len(ids) > 1:
            found.append(violation("webhook ids", subject, f"{event_type} delivered under {len(ids)} ids: {ids}"))
        if not any(200 <= delivery.answered < 300 for delivery in sent):
            answered = [d.answered for d in sent]
            found.append(violation("webhook undelivered", subject, f"{event_type}: answered {answered}"))
        job = final.get(subject)
        stale = job is not None and any(delivery.data.get("status") != job["status"] for delivery in sent)
        if event_type == "job.completed" and stale:
            found.append(violation("webhook stale", subject, f"job.completed said other than {job['status']}"))
    for job_id in history.webhook_jobs:
        job = final.get(job_id)
        if job is None or job["status"] not in TERMINAL:
            continue
        for event, state in job["webhook"]["state"].items():
            if state != "delivered":
                found.append(violation("webhook undelivered", job_id, f"{event} is {state} on the job"))
        if (job_id, "job.completed", None) not in events:
            found.append(violation("webhook undelivered", job_id, "no job.completed reached the receiver"))
    for batch_id, batch in batches.items():
        if (
            batch is not None
            and history.batches[batch_id]["webhook"]
            and (batch_id, "batch.completed", None) not in events
        ):
            found.append(violation("webhook undelivered", batch_id, "no batch.completed reached the receiver"))
    return found


def one_job_per_key(history: History, honouring_routes: Iterable[str]) -> list[dict]:
    """On a route that takes an Idempotency-Key, a key names one job (or batch), however often it is sent."""
    return [
        violation("idempotency", f"{route} {key}", f"one key made {len(ids)}: {sorted(ids)}")
        for (route, key), ids in history.keyed.items()
        if len(ids) > 1 and route in honouring_routes
    ]


def keys_by_route(history: History, routes: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per route: the keys sent, those sent more than once (a route none was sent twice to was not probed), and
    those that made more than one job: reported whether or not the route promises to honour keys."""
    summary = {route: {"keys": 0, "sent_twice": 0, "made_two": 0} for route in routes}
    for (route, key), sends in history.key_sends.items():
        counts = summary.setdefault(route, {"keys": 0, "sent_twice": 0, "made_two": 0})
        counts["keys"] += 1
        counts["sent_twice"] += sends > 1
        counts["made_two"] += len(history.keyed.get((route, key), ())) > 1
    return summary


def batches_add_up(
    history: History, batches: dict[str, dict | None], results: dict[str, list[dict]], final: dict[str, dict | None]
) -> list[dict]:
    """A batch counts the lines it was sent, its counts by status are its jobs' final statuses, and it completed
    (with its completion time: a batch whose last job ended in a crash is completed by the reconciler)."""
    found = []
    for batch_id, batch in batches.items():
        lines = history.batches[batch_id]["lines"]
        if batch is None:
            found.append(violation("lost", batch_id, "an accepted batch is gone (404)"))
            continue
        counted = sum(batch["counts"].values())
        if batch["total"] != lines or counted != lines or len(results.get(batch_id, [])) != lines:
            found.append(violation("batch counts", batch_id, f"sent {lines} lines: total {batch['total']}, "
                                   f"counts {batch['counts']}, {len(results.get(batch_id, []))} results"))  # fmt: skip
        jobs = [final.get(line["job_id"]) for line in results.get(batch_id, [])]
        statuses = collections.Counter(job["status"] for job in jobs if job is not None)
        if {status: count for status, count in batch["counts"].items() if count} != dict(statuses):
            found.append(violation("batch counts", batch_id, f"counts {batch['counts']}, its jobs {dict(statuses)}"))
        if batch["status"] not in ("completed", "canceled") or batch["completed_at"] is None:
            found.append(violation("stuck", batch_id, f"batch {batch['status']}, completed_at {batch['completed_at']}"))
    return found


def only_documented_errors(history: History) -> list[dict]:
    """No 5xx but a 503 with Retry-After (and a synchronous call's documented 500/504 naming its job's outcome);
    every error is JSON; every answer has the shape its client reads."""
    return [violation("bad answer", answer["route"], str(answer)) for answer in history.bad_answers] + [
        violation("unreadable answer", "client", failure) for failure in history.client_failures
    ]


def answers_name_stored_jobs(history: History, listed: list[dict], known: set[str]) -> list[dict]:
    """A job the service stored was named to its client, unless the client's connection was cut: a request
    answered (503, say) without naming the job it stored leaves the caller to retry and run it twice."""
    found = []
    for job in listed:
        if job["id"] in known:
            continue
        tag = _tag_of(job.get("input") or {})
        outcome = history.outcomes.get(tag, "unknown request")
        if outcome[:1].isdigit():
            found.append(violation("unnamed job", job["id"], f"request {tag} was answered {outcome}"))
    return found


def unnamed_jobs(listed: list[dict], known: set[str]) -> list[str]:
    return [job["id"] for job in listed if job["id"] not in known]


def _tag_of(job_input: dict) -> str:
    text = job_input.get("prompt") or ""
    if not text and job_input.get("messages"):
        text = str(job_input["messages"][-1].get("content", ""))
    return text.split(" ", 1)[0]
