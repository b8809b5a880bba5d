"""The abuse scenarios against `make run` (`python -m launcher` with its embedded Redis, memory budget and password):
one API key floods uploads, event streams, jobs, batches, waiting calls and plain requests past every limit it has,
while a second key's requests all succeed, its jobs get their turns ahead of the flood's backlog, and /healthz keeps
answering. Every refusal is a 429 naming its limit or a 503, each with Retry-After; nothing else is a 5xx. Without
keys, `make run` answers no foreign Host and no write from another origin."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import requests

from core.settings import Settings
from tests.faults.conftest import LONG_JOB
from tests.faults.test_run_local import DEFAULT_SHUTDOWN_GRACE_S, MakeRun
from tests.polling import poll_until, wait_until
from tests.raw_http import RawAnswer, open_request, read_all, read_head
from tests.sse import events_of

pytestmark = pytest.mark.faults

HOSTILE, VICTIM = "abuse-hostile-key", "abuse-victim-key"
KIB, MIB = 1024, 1024 * 1024
# Small quotas, so the flood passes each within seconds; the rate limit at its default (the tests' environment
# turns it off).
MAX_FILES, MAX_STREAMS, MAX_QUEUED, MAX_WAITS = 4, 4, 60, 2
QUOTAS = {
    "API_KEYS": f"{HOSTILE},{VICTIM}",
    "RATE_LIMIT": Settings.model_fields["rate_limit"].default,
    "MAX_FILES_PER_KEY": str(MAX_FILES),
    "MAX_FILE_BYTES_PER_KEY": str(MIB),
    "MAX_STREAMS_PER_KEY": str(MAX_STREAMS),
    "MAX_QUEUED_PER_KEY": str(MAX_QUEUED),
    "MAX_WAITS_PER_KEY": str(MAX_WAITS),
    # The flood's jobs are still running at Ctrl-C: the GPU worker hands them back after this, not after 30 s.
    "SHUTDOWN_GRACE_SECONDS": "2",
}
# Liveness bounds, not timing targets: the machine is shared with other test runs.
ANSWER_WITHIN_S = 30
READY_WITHIN_S = 180
VICTIM_DONE_WITHIN_S = 240
STOP_WITHIN_S = DEFAULT_SHUTDOWN_GRACE_S + 30
# Long enough that the backlog's turns outlast the victim's few jobs on a fast machine too.
FLOOD_JOB = {"prompt": "lũ", "max_tokens": 120, "ignore_eos": True, "do_sample": False}
VICTIM_JOB = {"prompt": "Xin chào", "max_tokens": 8}
VICTIM_JOBS = 5
# Places (job starts, the victim's own included) from the victim's first submission until its last job started:
# the worker holds up to 8 running and 8 prefetched jobs, then the keys alternate (tests/test_fair_turns.py).
# First come, first served it would be the whole backlog ahead of them (about MAX_QUEUED).
PLACES_BOUND = 8 + 2 * VICTIM_JOBS + 8
JSONL_LINE = b'{"custom_id": "x", "method": "POST", "url": "/v1/completions", "body": {"prompt": "hi"}}\n'
# Which limit each kind of the flood's 429 must name.
LIMIT_OF = {
    "upload": "MAX_FILES_PER_KEY",
    "upload-large": "MAX_FILE_BYTES_PER_KEY",
    "stream": "MAX_STREAMS_PER_KEY",
    "wait": "MAX_WAITS_PER_KEY",
    "job": "MAX_QUEUED_PER_KEY",
    "batch-large": "MAX_QUEUED_PER_KEY",
    "rate": "RATE_LIMIT",
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def jsonl_of(size: int) -> bytes:
    return JSONL_LINE * (size // len(JSONL_LINE) + 1)


def batch_jsonl(lines: int) -> str:
    return "\n".join(
        json.dumps({"custom_id": str(n), "body": {"prompt": f"dòng {n}", "max_tokens": 2}}) for n in range(lines)
    )


@dataclass(frozen=True)
class Answer:
    who: str  # HOSTILE, VICTIM or "probe"
    what: str  # the kind of request
    status: int  # 0: no answer within ANSWER_WITHIN_S (a hang) or the connection failed
    retry_after: str | None
    message: str
    body: dict


class Ledger:
    """Every answer of the scenario, from every thread."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self._lock = threading.Lock()

    def record(self, who: str, what: str, status: int, headers, body: bytes) -> Answer:
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        error = parsed.get("error") if isinstance(parsed, dict) else None
        message = error.get("message", "") if isinstance(error, dict) else ""
        retry_after = headers.get("retry-after") if headers is not None else None
        answer = Answer(who, what, status, retry_after, message, parsed if isinstance(parsed, dict) else {})
        with self._lock:
            self.answers.append(answer)
        return answer

    def call(self, who: str, what: str, method: str, url: str, **kwargs) -> Answer:
        """One request with `who`'s key; a timeout or a refused connection is recorded as status 0."""
        headers = dict(kwargs.pop("headers", {}), **(auth(who) if who != "probe" else {}))
        try:
            response = requests.request(method, url, headers=headers, timeout=ANSWER_WITHIN_S, **kwargs)
        except (requests.ConnectionError, requests.Timeout):
            return self.record(who, what, 0, None, b"")
        return self.record(who, what, response.status_code, response.headers, response.content)

    def raw(self, who: str, what: str, answer: RawAnswer) -> Answer:
        return self.record(who, what, answer.status, answer.headers, answer.body)

    def of(self, who: str, what: str | None = None) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.who == who and (what is None or a.what == what)]

    def counts(self) -> dict[str, dict[int, int]]:
        with self._lock:
            by_who: dict[str, Counter] = {}
            for answer in self.answers:
                by_who.setdefault(answer.who, Counter())[answer.status] += 1
        return {who: dict(sorted(counter.items())) for who, counter in by_who.items()}


def upload(ledger: Ledger, url: str, who: str, what: str, size: int) -> Answer:
    files = {"file": ("input.jsonl", jsonl_of(size), "application/jsonl")}
    return ledger.call(who, what, "POST", f"{url}/v1/files", data={"purpose": "batch"}, files=files)


def repeat_until_refused(call: Callable[[], Answer], refusals: int, attempts: int) -> list[Answer]:
    """Call until `refusals` answers were not 2xx (or `attempts` ran out)."""
    answers: list[Answer] = []
    for _ in range(attempts):
        answers.append(call())
        if sum(1 for a in answers if not 200 <= a.status < 300) >= refusals:
            break
    return answers


def in_parallel(calls: list[Callable[[], object]]) -> list[object]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


class Hostile:
    """The flooding key: what it holds open (waits, streams) and the jobs it got queued."""

    def __init__(self, url: str, ledger: Ledger) -> None:
        self.url = url
        self.ledger = ledger
        self.held: list[socket.socket] = []
        self.flood_job_ids: list[str] = []
        self.backlog_full = threading.Event()

    def hold_waits(self) -> None:
        """MAX_WAITS synchronous calls left waiting on long jobs, then more: each refused before making a job."""
        for _ in range(MAX_WAITS):
            self.held.append(open_request(self.url, "POST", "/v1/generate", headers=auth(HOSTILE), body=LONG_JOB))
        # Both waits hold their slot once their jobs exist.
        poll_until(self.job_count, lambda n: n >= MAX_WAITS, ANSWER_WITHIN_S, "the waiting calls' jobs")
        for _ in range(3):
            extra = open_request(self.url, "POST", "/v1/generate", headers=auth(HOSTILE), body=LONG_JOB)
            self.ledger.raw(HOSTILE, "wait", read_all(extra))

    def job_count(self) -> int:
        answer = self.ledger.call(HOSTILE, "list", "GET", f"{self.url}/jobs", params={"limit": 10})
        return len(answer.body.get("data", []))

    def flood_uploads(self) -> None:
        """One upload past the byte quota, then three clients uploading past the file count."""
        upload(self.ledger, self.url, HOSTILE, "upload-large", 2 * MIB)

        def client() -> list[Answer]:
            return [upload(self.ledger, self.url, HOSTILE, "upload", 150 * KIB) for _ in range(MAX_FILES)]

        in_parallel([client] * 3)

    def flood_jobs(self) -> None:
        """A small batch, then three clients submitting past MAX_QUEUED_PER_KEY, then a batch far past it."""
        self.ledger.call(
            HOSTILE,
            "batch",
            "POST",
            f"{self.url}/batches",
            data=batch_jsonl(10),
            headers={"Content-Type": "application/jsonl"},
        )

        def submit() -> Answer:
            answer = self.ledger.call(HOSTILE, "job", "POST", f"{self.url}/jobs", json=FLOOD_JOB)
            if answer.status == 202:
                self.flood_job_ids.append(answer.body["id"])
            elif answer.status == 429:
                self.backlog_full.set()
            return answer

        in_parallel([lambda: repeat_until_refused(submit, 3, 3 * MAX_QUEUED)] * 3)
        self.ledger.call(
            HOSTILE,
            "batch-large",
            "POST",
            f"{self.url}/batches",
            data=batch_jsonl(1000),
            headers={"Content-Type": "application/jsonl"},
        )

    def hold_streams(self) -> None:
        """Event streams on its last jobs (which stay queued longest) past MAX_STREAMS_PER_KEY, the first held open."""
        targets = self.flood_job_ids[-(MAX_STREAMS + 4) :]
        for job_id in targets:
            connection = open_request(self.url, "GET", f"/jobs/{job_id}/events", headers=auth(HOSTILE))
            head = read_head(connection)
            if head.status == 200:
                self.held.append(connection)
                self.ledger.raw(HOSTILE, "stream", head)
            else:
                self.ledger.raw(HOSTILE, "stream", finish(connection, head))

    def flood_requests(self, until: threading.Event) -> None:
        """Four clients listing jobs as fast as they can, until one is refused for its rate (or `until`)."""
        refused = threading.Event()

        def client() -> None:
            for _ in range(600):
                if refused.is_set() or until.is_set():
                    return
                answer = self.ledger.call(HOSTILE, "rate", "GET", f"{self.url}/jobs", params={"limit": 1})
                if answer.status == 429:
                    refused.set()

        in_parallel([client] * 4)

    def let_go(self) -> None:
        """Closes what it held: the waits' jobs are canceled as their callers leave, the streams end."""
        for connection in self.held:
            connection.close()


def finish(connection: socket.socket, head: RawAnswer) -> RawAnswer:
    """The rest of an answer whose head was read (HTTP/1.0: until the server closes)."""
    rest = head.body
    while chunk := connection.recv(65536):
        rest += chunk
    connection.close()
    return RawAnswer(head.status, head.headers, rest)


class Victim:
    """The other key: it only ever makes ordinary requests, and each must succeed."""

    def __init__(self, url: str, ledger: Ledger) -> None:
        self.url = url
        self.ledger = ledger
        self.job_ids: list[str] = []
        self.created_at: datetime | None = None
        self.jobs: list[dict] = []
        self.abort = threading.Event()  # the test failed elsewhere: stop waiting

    def call(self, what: str, method: str, path: str, **kwargs) -> Answer:
        return self.ledger.call(VICTIM, what, method, f"{self.url}{path}", **kwargs)

    def submit(self, body: dict) -> str | None:
        answer = self.call("job", "POST", "/jobs", json=body)
        if answer.status != 202:
            return None
        if self.created_at is None:
            self.created_at = datetime.fromisoformat(answer.body["created_at"])
        return answer.body["id"]

    def behind_the_backlog(self, backlog_full: threading.Event) -> None:
        """Its upload and jobs once the flood's backlog is full; one job watched to its end, one call waited on."""
        upload(self.ledger, self.url, VICTIM, "upload", 150 * KIB)
        assert backlog_full.wait(READY_WITHIN_S), "the flood never reached MAX_QUEUED_PER_KEY"
        for _ in range(VICTIM_JOBS):
            job_id = self.submit(VICTIM_JOB)
            if job_id is not None:
                self.job_ids.append(job_id)
        if not self.job_ids:
            return
        self.watch_to_completion(self.job_ids[-1])
        self.call("generate", "POST", "/v1/generate", json=VICTIM_JOB)
        self.jobs = self.wait_for(self.job_ids)

    def watch_to_completion(self, job_id: str) -> None:
        """GET /jobs/<id>/events read until its `completed` event; the answer is recorded with the job it ends with."""
        try:
            with requests.get(
                f"{self.url}/jobs/{job_id}/events", headers=auth(VICTIM), stream=True, timeout=VICTIM_DONE_WITHIN_S
            ) as response:
                body = b"{}"
                if response.status_code == 200:
                    completed = [
                        event for event in events_of(response.iter_content(None)) if event.event == "completed"
                    ]
                    body = json.dumps({"completed": completed[0].data if completed else None}).encode()
                else:
                    body = response.content
                self.ledger.record(VICTIM, "stream", response.status_code, response.headers, body)
        except (requests.ConnectionError, requests.Timeout):
            self.ledger.record(VICTIM, "stream", 0, None, b"")

    def wait_for(self, job_ids: list[str]) -> list[dict]:
        """Its jobs once all have finished, read with one listing a second (well within its own rate)."""

        def read() -> dict[str, dict]:
            if self.abort.is_set():
                raise AssertionError("the test failed elsewhere")
            page = self.call("list", "GET", "/jobs", params={"limit": 50}).body.get("data", [])
            return {job["id"]: job for job in page if job["id"] in job_ids}

        def done(jobs: dict[str, dict]) -> bool:
            return len(jobs) == len(job_ids) and all(
                job["status"] in ("succeeded", "failed", "canceled") for job in jobs.values()
            )

        found = poll_until(read, done, VICTIM_DONE_WITHIN_S, "the victim's jobs to finish", interval_s=1)
        return [found[job_id] for job_id in job_ids]


def keep_probing(url: str, ledger: Ledger, stop: threading.Event) -> None:
    """/healthz, and the victim's short listing, twice a second for as long as the abuse lasts."""
    while not stop.is_set():
        ledger.call("probe", "healthz", "GET", f"{url}/healthz")
        ledger.call(VICTIM, "list", "GET", f"{url}/jobs", params={"limit": 1})
        stop.wait(0.5)


def started(job: dict) -> datetime | None:
    return datetime.fromisoformat(job["started_at"]) if job.get("started_at") else None


def hostile_jobs(url: str) -> list[dict]:
    """Every job of the flooding key (read before its request rate is spent)."""
    jobs, cursor = [], None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = requests.get(f"{url}/jobs", params=params, headers=auth(HOSTILE), timeout=ANSWER_WITHIN_S)
        assert page.status_code == 200, page.text
        jobs += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return jobs


def stop_make_run(run: MakeRun) -> None:
    """Ctrl-C, as a developer stops it: everything it started is gone, and it says so."""
    children = run.descendants()
    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(STOP_WITHIN_S) == 0
    assert [child.pid for child in children if child.is_running()] == []
    assert run.output().rstrip().endswith("[make run] stopped")


def is_ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


def test_one_key_flooding_every_limit_leaves_another_keys_requests_succeeding(
    tmp_path: Path, demo_model_dir: Path
) -> None:
    run = MakeRun(tmp_path, demo_model_dir, **QUOTAS)
    ledger = Ledger()
    hostile, victim = Hostile(run.url, ledger), Victim(run.url, ledger)
    probing_stop = threading.Event()
    pool = ThreadPoolExecutor(4)
    began = time.monotonic()
    try:
        wait_until(lambda: run.process.poll() is None and is_ready(run.url), READY_WITHIN_S, "a ready make run", 0.2)
        ready_s = time.monotonic() - began
        probing = pool.submit(keep_probing, run.url, ledger, probing_stop)
        hostile.hold_waits()
        uploads = pool.submit(hostile.flood_uploads)
        victims = pool.submit(victim.behind_the_backlog, hostile.backlog_full)
        hostile.flood_jobs()
        hostile.hold_streams()
        uploads.result()
        victims.result()
        # The places the victim's jobs waited, read before the flood spends its request rate.
        backlog = {job["id"]: job for job in hostile_jobs(run.url)}
        # The flood's last burst: plain requests past its rate, while the victim submits one more job.
        last = pool.submit(lambda: victim.wait_for([victim.submit(VICTIM_JOB) or "refused"]))
        hostile.flood_requests(victim.abort)
        last_jobs = last.result()
        hostile.let_go()
        probing_stop.set()
        probing.result()
        abuse_s = time.monotonic() - began - ready_s

        print(f"\nanswers by status, per key: {ledger.counts()}")
        print(f"by kind: {dict(sorted(Counter((a.who, a.what, a.status) for a in ledger.answers).items()))}")

        # Nothing anywhere is a 5xx but a 503 that says when to retry, and nothing hung.
        for answer in ledger.answers:
            assert answer.status != 0, f"no answer: {answer}"
            if answer.status >= 500:
                assert answer.status == 503 and answer.retry_after, answer
        # The victim: every request succeeded, its jobs (and the one submitted during the rate flood) succeeded.
        assert [a for a in ledger.of(VICTIM) if not 200 <= a.status < 300] == []
        assert len(victim.job_ids) == VICTIM_JOBS
        assert [job["status"] for job in victim.jobs + last_jobs] == ["succeeded"] * (VICTIM_JOBS + 1)
        (stream,) = ledger.of(VICTIM, "stream")
        assert stream.body["completed"]["status"] == "succeeded"
        (generated,) = ledger.of(VICTIM, "generate")
        assert generated.body["finish_reason"] is not None
        # /healthz answered throughout.
        health = ledger.of("probe", "healthz")
        assert len(health) >= 5 and {a.status for a in health} == {200}

        # The flood: each limit was reached, and each refusal was a 429 naming it (or a 503), with Retry-After.
        for what, limit in LIMIT_OF.items():
            refused = [a for a in ledger.of(HOSTILE, what) if not 200 <= a.status < 300]
            assert refused, f"the flood never passed {limit}"
            for answer in refused:
                assert answer.status in (429, 503) and int(answer.retry_after or 0) >= 1, answer
                if answer.status == 429:
                    assert limit in answer.message, answer
        assert [a.status for a in ledger.of(HOSTILE, "upload")].count(200) == MAX_FILES
        assert [a.status for a in ledger.of(HOSTILE, "wait")] == [429] * 3
        assert [a.status for a in ledger.of(HOSTILE, "stream")] == [200] * MAX_STREAMS + [429] * 4
        assert [a.status for a in ledger.of(HOSTILE, "batch")] == [202]

        # Fair turns: the victim's jobs started within a few places of their submission, ahead of most of the
        # backlog the flood had queued before them (first come, first served, none of it would start later).
        last_start = max(started(job) for job in victim.jobs)
        ahead = [backlog[job_id] for job_id in hostile.flood_job_ids]
        ahead = [job for job in ahead if datetime.fromisoformat(job["created_at"]) < victim.created_at]
        overtaken = [job for job in ahead if started(job) is None or started(job) > last_start]
        places = VICTIM_JOBS + sum(
            1
            for job in backlog.values()
            if started(job) is not None and victim.created_at <= started(job) <= last_start
        )
        print(
            f"the victim's {VICTIM_JOBS} jobs all started within {places} places; {len(overtaken)} of the "
            f"{len(ahead)} flood jobs queued before them started later"
        )
        assert places <= PLACES_BOUND
        assert len(overtaken) >= MAX_QUEUED // 4

        stop_make_run(run)
        # No error was swallowed on the way either: a stream or a wait that broke after its 200 prints a traceback.
        assert "Traceback" not in run.output()
        print(f"ready in {ready_s:.0f} s, abuse {abuse_s:.0f} s, in all {time.monotonic() - began:.0f} s")
    except BaseException:
        print(run.output()[-8000:])
        raise
    finally:
        # After a failure: nothing of the scenario waits on, and the stack goes (its clients then fail fast).
        for event in (probing_stop, victim.abort, hostile.backlog_full):
            event.set()
        hostile.let_go()
        pool.shutdown(wait=False, cancel_futures=True)
        run.kill_everything()


def test_keyless_make_run_refuses_a_foreign_host_and_a_cross_origin_write(tmp_path: Path, demo_model_dir: Path) -> None:
    run = MakeRun(tmp_path, demo_model_dir)  # no API_KEYS: this machine's API
    try:
        # The API answers before the worker has loaded its model; the guard needs nothing more.
        wait_until(lambda: run.process.poll() is None and is_ready_or_starting(run.url), READY_WITHIN_S, "the API", 0.2)
        rebound = requests.get(f"{run.url}/jobs", headers={"Host": "rebind.example"}, timeout=ANSWER_WITHIN_S)
        assert rebound.status_code == 403, rebound.text
        assert "Host" in rebound.json()["error"]["message"]
        foreign = requests.post(
            f"{run.url}/jobs", json=VICTIM_JOB, headers={"Origin": "http://evil.example"}, timeout=ANSWER_WITHIN_S
        )
        assert foreign.status_code == 403, foreign.text
        assert "origin" in foreign.json()["error"]["message"]
        # The same requests without those headers are answered: it was the Host and the Origin that were refused.
        assert requests.get(f"{run.url}/jobs", timeout=ANSWER_WITHIN_S).status_code == 200
        own = requests.post(f"{run.url}/jobs", json=VICTIM_JOB, headers={"Origin": run.url}, timeout=ANSWER_WITHIN_S)
        assert own.status_code == 202, own.text
        stop_make_run(run)
    except BaseException:
        print(run.output()[-8000:])
        raise
    finally:
        run.kill_everything()


def is_ready_or_starting(url: str) -> bool:
    """The API answers /healthz (its workers may still be loading)."""
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False
