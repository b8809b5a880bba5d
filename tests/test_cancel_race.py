"""Cancels racing completion, over real HTTP against a real worker batching 8 jobs at a time.

Many short jobs are canceled at varied small delays after they start, so that some cancels land just before,
some just after, and some exactly while a job finishes. A `202` says "it is running and will stop"; a job that
had already finished must get `409`.
"""

from __future__ import annotations

import itertools
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from core.redis.keys import CANCEL_KEY
from tests.polling import get_job, poll_until, wait_for_terminal

JOBS = 48
# Seconds after a job is seen running: from at once to well past the end of a short job.
CANCEL_DELAYS_S = (0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.6)
MAX_TOKENS = (4, 6, 8, 12, 16)
CONCURRENT_CLIENTS = 12  # more than the worker's 8 slots, so the batch stays full while jobs come and go


@dataclass(frozen=True)
class CancelTry:
    job_id: str
    status_code: int
    answer: dict
    final: dict


def submit_then_cancel(base_url: str, index: int, max_tokens: int, delay_s: float) -> tuple[str, int, dict]:
    """Submit a job, wait until it runs (or has already finished), wait `delay_s` more, then cancel it."""
    body = {"prompt": f"hủy đua {index}", "max_tokens": max_tokens, "ignore_eos": True}
    response = requests.post(f"{base_url}/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    poll_until(lambda: get_job(base_url, job_id), lambda job: job["status"] != "queued", 60, f"job {job_id} to start",
               interval_s=0.01)  # fmt: skip
    time.sleep(delay_s)
    response = requests.post(f"{base_url}/jobs/{job_id}/cancel", timeout=10)
    return job_id, response.status_code, response.json()


@pytest.fixture(scope="module")
def race(api_server) -> list[CancelTry]:
    """Submit the jobs, cancel each at its delay, and collect every answer beside the job's final state."""
    base_url = api_server.base_url
    rng = random.Random(9)
    delays = list(itertools.islice(itertools.cycle(CANCEL_DELAYS_S), JOBS))
    rng.shuffle(delays)
    plans = [(index, rng.choice(MAX_TOKENS), delay) for index, delay in enumerate(delays)]
    with ThreadPoolExecutor(max_workers=CONCURRENT_CLIENTS) as pool:
        answers = list(pool.map(lambda plan: submit_then_cancel(base_url, *plan), plans))
    return [CancelTry(job_id, code, answer, wait_for_terminal(base_url, job_id)) for job_id, code, answer in answers]


def test_cancel_answers_match_the_state_the_job_was_in(race, store):
    codes = sorted({attempt.status_code for attempt in race})
    print("cancel answers:", {code: sum(a.status_code == code for a in race) for code in codes})
    assert set(codes) <= {200, 202, 409}
    # The race was run: some cancels found the job running, some found it finished.
    assert 202 in codes and 409 in codes
    for attempt in race:
        if attempt.status_code == 409:
            # Refused only because the job had finished, and the answer names how it finished.
            assert attempt.answer["error"]["type"] == "wrong_state"
            assert f"is {attempt.final['status']}:" in attempt.answer["error"]["message"]
        elif attempt.status_code == 202:
            assert attempt.answer["status"] == "running"
        else:
            assert attempt.answer["status"] == "canceled" == attempt.final["status"]
    # The cancel flag is set only while a job runs, and a job's end clears it: none may outlive its job.
    assert not [a.job_id for a in race if store.redis.exists(CANCEL_KEY.format(job_id=a.job_id))]


def test_a_job_answered_202_never_ends_succeeded(race):
    accepted_then_succeeded = [a.job_id for a in race if a.status_code == 202 and a.final["status"] == "succeeded"]
    print(f"{len(accepted_then_succeeded)} of {sum(a.status_code == 202 for a in race)} jobs answered 202 succeeded")
    assert not accepted_then_succeeded
