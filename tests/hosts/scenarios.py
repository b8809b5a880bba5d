"""The test hosts' scenarios: clients submit throughout while a fault hits one host, then Jepsen-style checks
(every accepted id terminal, none lost, none run beyond its attempts, no 5xx but 503 with Retry-After)."""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from standardwebhooks.webhooks import Webhook

from core.workers.registry import WorkerRegistry
from launcher.redis_server import free_port
from tests.conftest import WEBHOOK_SECRET
from tests.hosts.network import BRIDGE_ADDRESS
from tests.hosts.service import API_KEY, ServiceHosts
from tests.soak.checks import executions_within_attempts, lost_or_stuck, violation
from tests.soak.evidence import TERMINAL, read_executions

MAX_ATTEMPTS = 3
# Every this many client jobs asks for a webhook (to the receiver on the clients' side of the bridge).
WEBHOOK_EVERY = 5


class HookReceiver:
    """The clients' webhook receiver, on the bridge's address (the ops host reaches it there): answers 200 and keeps
    every delivery whose signature verifies, by job id."""

    def __init__(self) -> None:
        self.port = free_port()
        self.completed: dict[str, list[str]] = collections.defaultdict(list)  # job id -> statuses delivered
        self.forged = 0
        self.lock = threading.Lock()
        verifier = Webhook(WEBHOOK_SECRET)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    payload = verifier.verify(body, dict(self.headers))
                except Exception:  # noqa: BLE001 - any failure to verify is a forged delivery
                    with receiver.lock:
                        receiver.forged += 1
                    payload = json.loads(body)
                else:
                    if payload.get("type") == "job.completed":
                        with receiver.lock:
                            receiver.completed[payload["data"]["id"]].append(payload["data"]["status"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((BRIDGE_ADDRESS, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{BRIDGE_ADDRESS}:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Submissions:
    """What clients were told: accepted ids (202), 503s (with the job id when one was named), anything else."""

    accepted: dict[str, float] = field(default_factory=dict)
    named_in_503: set[str] = field(default_factory=set)
    answers: collections.Counter = field(default_factory=collections.Counter)
    violations: list[dict] = field(default_factory=list)
    unanswered: int = 0
    # Idempotency-Key -> the ids its answers named: a request sent again after no answer must find the same job.
    keyed: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    resent: set[str] = field(default_factory=set)  # keys whose request got no answer at least once
    webhook_jobs: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_accept_after(self, moment: float) -> float | None:
        later = [at for at in self.accepted.values() if at >= moment]
        return min(later) if later else None


class Clients:
    """`threads` clients, each POSTing a short job to the API host and writing down the answer, until stopped;
    every WEBHOOK_EVERY-th job asks for a webhook to `hooks`."""

    def __init__(
        self, api_url: str, threads: int = 3, pause_s: float = 0.05, hooks: HookReceiver | None = None
    ) -> None:
        self.api_url = api_url
        self.hooks = hooks
        self.threads = threads
        self.pause_s = pause_s
        self.record = Submissions()
        self.stopping = threading.Event()
        self.counter = itertools.count()
        self.workers: list[threading.Thread] = []

    def __enter__(self) -> Clients:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"client-{index}", daemon=True)
            thread.start()
            self.workers.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.workers:
            thread.join(30)

    def _run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        while not self.stopping.is_set():
            number = next(self.counter)
            body = {"prompt": f"host test {number}", "max_tokens": 4}
            if self.hooks is not None and number % WEBHOOK_EVERY == 0:
                body["webhook"] = self.hooks.url
            key = f"hosts-{number}"
            # A request left without an answer (its host cut off) is sent again with its key until one comes: the
            # job it may have stored must be found, never made twice. Past the clients' stop it gets 30 s more.
            give_up_at = None
            while True:
                try:
                    answer = session.post(
                        f"{self.api_url}/jobs", json=body, headers={"Idempotency-Key": key}, timeout=5
                    )
                    break
                except requests.RequestException:
                    with self.record.lock:
                        self.record.unanswered += 1
                        self.record.resent.add(key)
                    if self.stopping.is_set():
                        give_up_at = give_up_at or time.monotonic() + 30
                        if time.monotonic() > give_up_at:
                            answer = None
                            break
                    time.sleep(0.5)
            if answer is not None:
                self._note(answer, key, "webhook" in body)
            time.sleep(self.pause_s)

    def _note(self, answer: requests.Response, key: str, webhook: bool) -> None:
        record = self.record
        with record.lock:
            record.answers[answer.status_code] += 1
            if answer.status_code == 202:
                record.accepted[answer.json()["id"]] = time.monotonic()
                record.keyed[key].add(answer.json()["id"])
                if webhook:
                    record.webhook_jobs.add(answer.json()["id"])
            elif answer.status_code == 503:
                if not answer.headers.get("Retry-After"):
                    record.violations.append(violation("503 without Retry-After", "-", answer.text[:200]))
                named = (answer.json().get("error") or {}).get("job_id")
                if named:
                    record.named_in_503.add(named)
            elif answer.status_code >= 500:
                record.violations.append(violation("5xx", "-", f"{answer.status_code}: {answer.text[:200]}"))


def read_jobs(api_url: str, job_ids: list[str]) -> dict[str, dict | None]:
    """Each job as GET /jobs/<id> answers it (None: 404)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    found: dict[str, dict | None] = {}
    for job_id in job_ids:
        answer = session.get(f"{api_url}/jobs/{job_id}", timeout=10)
        if answer.status_code == 404:
            found[job_id] = None
        else:
            answer.raise_for_status()
            found[job_id] = answer.json()
    return found


def wait_until_terminal(api_url: str, job_ids: list[str], timeout_s: float) -> dict[str, dict | None]:
    """Re-read the jobs until each is terminal or gone, or the time is up; the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            final = read_jobs(api_url, job_ids)
        except requests.RequestException:
            final = None
        settled = final is not None and all(job is None or job["status"] in TERMINAL for job in final.values())
        if settled or time.monotonic() > deadline:
            if final is None:
                final = read_jobs(api_url, job_ids)
            return final
        time.sleep(1)


@dataclass
class Outcome:
    """A scenario's counts, figures and violations."""

    name: str
    counts: dict
    figures: dict
    violations: list[dict]

    def report(self) -> str:
        lines = [f"scenario {self.name}: {'PASS' if not self.violations else 'FAIL'}"]
        lines += [f"  {key}: {value}" for key, value in {**self.counts, **self.figures}.items()]
        lines += [f"  VIOLATION {item['check']} {item['id']}: {item['detail']}" for item in self.violations[:20]]
        return "\n".join(lines)


def webhooks_delivered(
    hooks: HookReceiver | None, record: Submissions, final: dict[str, dict | None], wait_s: float = 60
) -> list[dict]:
    """Each finished job that asked for a webhook had its `job.completed`, signed and with its final status."""
    if hooks is None:
        return []
    deadline = time.monotonic() + wait_s
    while True:
        with hooks.lock:
            missing = [
                job_id
                for job_id in record.webhook_jobs
                if final.get(job_id) and final[job_id]["status"] in TERMINAL and job_id not in hooks.completed
            ]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    found = [violation("webhook undelivered", job_id, "no job.completed reached the receiver") for job_id in missing]
    with hooks.lock:
        for job_id, statuses in hooks.completed.items():
            job = final.get(job_id)
            if job is not None and any(status != job["status"] for status in statuses):
                found.append(violation("webhook stale", job_id, f"delivered {statuses}, job is {job['status']}"))
        if hooks.forged:
            found.append(violation("webhook forged", "-", f"{hooks.forged} deliveries did not verify"))
    return found


def check(
    name: str,
    hosts: ServiceHosts,
    record: Submissions,
    figures: dict,
    drain_s: float = 180,
    hooks: HookReceiver | None = None,
) -> Outcome:
    """The Jepsen-style checks once the clients stopped and the jobs had time to finish."""
    accepted = sorted(record.accepted)
    final = wait_until_terminal(hosts.api_url, accepted, drain_s)
    found = list(record.violations)
    found += lost_or_stuck(final)
    found += executions_within_attempts(read_executions(hosts.execution_log), final, MAX_ATTEMPTS, set())
    found += [
        violation("idempotency", key, f"one key made {len(ids)} jobs: {sorted(ids)}")
        for key, ids in record.keyed.items()
        if len(ids) > 1
    ]
    found += webhooks_delivered(hooks, record, final)
    if hooks is not None:
        hooks.close()
    statuses = collections.Counter(job["status"] if job else "lost" for job in final.values())
    counts = {
        "answers": dict(sorted(record.answers.items())),
        "accepted (202)": len(accepted),
        "503 naming a job": len(record.named_in_503),
        "unanswered (connection refused or timed out)": record.unanswered,
        "final statuses of accepted jobs": dict(statuses),
        "webhooks asked (job.completed delivered)": f"{len(record.webhook_jobs)} "
        f"({sum(1 for job_id in record.webhook_jobs if hooks and job_id in hooks.completed)})",
    }
    return Outcome(name, counts, figures, found)


def master_host_dies(hosts: ServiceHosts, before_s: float = 6, down_s: float = 12, after_s: float = 25) -> Outcome:
    """Scenario 1: the Redis master's host dies (link cut, processes killed) while clients submit; the sentinels
    promote the replica, every program finds it; the dead host comes back later as a replica (the sentinels make it
    one about ten seconds after it answers again), after which submissions are acknowledged again."""
    hooks = HookReceiver()
    with Clients(hosts.api_url, hooks=hooks) as clients:
        time.sleep(before_s)
        old_master = hosts.redis.master_address()
        killed_at = time.monotonic()
        hosts.kill_redis_master_host()
        promoted_at = None
        while time.monotonic() - killed_at < down_s:
            if promoted_at is None and hosts.redis.master_address() not in (None, old_master):
                promoted_at = time.monotonic()
            time.sleep(0.1)
        revived_at = time.monotonic()
        hosts.revive_redis_host()
        time.sleep(after_s)
    record = clients.record
    first_accept = record.first_accept_after(revived_at)
    figures = {
        "sentinels promoted the replica after (s)": _seconds(promoted_at, killed_at),
        "first 202 after the kill (s)": _seconds(record.first_accept_after(killed_at + 0.5), killed_at),
        "first 202 after the old master's host came back as a replica (s)": _seconds(first_accept, revived_at),
        "202s answered between the kill and the old host's return": sum(
            1 for at in record.accepted.values() if killed_at < at < revived_at
        ),
    }
    found = []
    if promoted_at is None:
        found.append(violation("no failover", "-", f"no new master within {down_s} s"))
    if first_accept is None:
        found.append(violation("work stopped", "-", "no submission accepted after the set was whole again"))
    outcome = check("1: the Redis master's host dies", hosts, record, figures, hooks=hooks)
    outcome.violations += found
    return outcome


def submit_long_jobs(hosts: ServiceHosts, record: Submissions, count: int, max_tokens: int) -> list[str]:
    """`count` jobs that generate `max_tokens` tokens each (ignoring EOS), added to what clients were told."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    ids = []
    for number in range(count):
        body = {"prompt": f"long job {number}", "max_tokens": max_tokens, "ignore_eos": True}
        answer = session.post(f"{hosts.api_url}/jobs", json=body, timeout=10)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
        with record.lock:
            record.answers[202] += 1
            record.accepted[ids[-1]] = time.monotonic()
    return ids


def wait_for_running_on(hosts: ServiceHosts, job_ids: list[str], worker_prefix: str, timeout_s: float) -> str | None:
    """The first of these jobs seen running on a worker whose name starts with `worker_prefix`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job_id, job in read_jobs(hosts.api_url, job_ids).items():
            if job and job["status"] == "running" and (job.get("worker") or "").startswith(worker_prefix):
                return job_id
        time.sleep(0.2)
    return None


def gpu_host_cut_off(hosts: ServiceHosts, cut_s: float = 12, after_s: float = 20) -> Outcome:
    """Scenario 2: a GPU host is cut off (from Redis and everything) for longer than the heartbeat timeout while its
    jobs run, then healed. Its jobs must run on the other GPU host (or again), each with one outcome, and the
    returning worker must announce itself again or exit on its own."""
    assert hosts.gpu_hosts >= 2, "the cut-off host's jobs need another GPU host"
    hooks = HookReceiver()
    with Clients(hosts.api_url, threads=2, hooks=hooks) as clients:
        long_ids = submit_long_jobs(hosts, clients.record, count=6, max_tokens=1500)
        caught = wait_for_running_on(hosts, long_ids, hosts.worker_name("gpu"), timeout_s=60)
        cut_at = time.monotonic()
        hosts.network.cut("gpu")
        time.sleep(cut_s)
        hosts.network.heal("gpu")
        healed_at = time.monotonic()
        rejoined_at, exit_code = None, None
        while time.monotonic() - healed_at < after_s:
            live = {worker.name.split("@")[0] for worker in WorkerRegistry(hosts.store.redis).live()}
            if rejoined_at is None and hosts.worker_name("gpu") in live:
                rejoined_at = time.monotonic()
            exit_code = hosts.processes["gpu"].poll()
            time.sleep(0.5)
    outcome = check("2: a GPU host cut off from Redis while its jobs run", hosts, clients.record, {}, hooks=hooks)
    caught_job = read_jobs(hosts.api_url, [caught])[caught] if caught else None
    outcome.figures.update(
        {
            "job running on the cut-off host": caught or "none seen",
            "its final status, attempts, worker": (
                f"{caught_job['status']}, {caught_job['attempts']}, {caught_job['worker']}" if caught_job else "-"
            ),
            "cut off for (s)": f"{healed_at - cut_at:.1f}",
            "the returning worker": (
                f"announced itself again {rejoined_at - healed_at:.1f} s after the heal"
                if rejoined_at is not None
                else f"exited with code {exit_code}"
                if exit_code is not None
                else "neither rejoined nor exited"
            ),
        }
    )
    if caught is None:
        outcome.violations.append(violation("setup", "-", "no long job ran on the GPU host before the cut"))
    if rejoined_at is None and exit_code is None:
        outcome.violations.append(violation("stuck worker", "gpu", "neither announced itself again nor exited"))
    return outcome


def api_host_cut_off(hosts: ServiceHosts, before_s: float = 4, cut_s: float = 8, after_s: float = 10) -> Outcome:
    """Scenario 3: the API host is cut off (from its clients and from Redis) with requests in flight, then healed.
    Requests left without an answer are sent again with their Idempotency-Key; the API reaches Redis again by
    itself."""
    hooks = HookReceiver()
    with Clients(hosts.api_url, hooks=hooks) as clients:
        time.sleep(before_s)
        cut_at = time.monotonic()
        hosts.network.cut("api")
        time.sleep(cut_s)
        hosts.network.heal("api")
        healed_at = time.monotonic()
        time.sleep(after_s)
    record = clients.record
    first_accept = record.first_accept_after(healed_at)
    outcome = check("3: the API host cut off mid-request", hosts, record, {}, hooks=hooks)
    outcome.figures.update(
        {
            "cut off for (s)": f"{healed_at - cut_at:.1f}",
            "first 202 after the heal (s)": _seconds(first_accept, healed_at),
            "sent again after no answer, then 202": sum(1 for key in record.resent if record.keyed[key]),
        }
    )
    if first_accept is None:
        outcome.violations.append(violation("work stopped", "-", "no submission accepted after the heal"))
    return outcome


def completed_per_s(final: dict[str, dict | None], start: float, end: float, clock_offset: float) -> float:
    """Jobs finished per second between two moments of this process's monotonic clock."""
    finished = 0
    for job in final.values():
        if job and job.get("completed_at"):
            at = datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00")).timestamp() - clock_offset
            finished += start <= at < end
    return finished / max(end - start, 1e-9)


def slow_gpu_link(
    hosts: ServiceHosts, before_s: float = 10, slow_s: float = 20, after_s: float = 10, delay_ms: int = 40
) -> Outcome:
    """Scenario 4: the link between the GPU host and Redis turns slow (every chunk delayed `delay_ms`) and lossy
    (every connection dropped every 4 s), then heals. Throughput falls; nothing is lost or run twice."""
    assert hosts.slow_gpu_link, "the GPU host must reach Redis through the test's proxy"
    clock_offset = time.time() - time.monotonic()
    hooks = HookReceiver()
    with Clients(hosts.api_url, threads=2, pause_s=0.1, hooks=hooks) as clients:
        time.sleep(before_s)
        slowed_at = time.monotonic()
        hosts.gpu_link_control.write_text(f"{delay_ms} 4")
        time.sleep(slow_s)
        hosts.gpu_link_control.write_text("0 0")
        healed_at = time.monotonic()
        time.sleep(after_s)
        stopped_at = time.monotonic()
    outcome = check("4: a slow, lossy link between the GPU host and Redis", hosts, clients.record, {}, hooks=hooks)
    final = read_jobs(hosts.api_url, sorted(clients.record.accepted))

    def rate(start: float, end: float) -> str:
        return f"{completed_per_s(final, start, end, clock_offset):.1f}"

    outcome.figures.update(
        {
            "link": f"{delay_ms} ms per chunk each way, every connection dropped every 4 s, for {slow_s:g} s",
            "jobs finished per second before": rate(slowed_at - before_s, slowed_at),
            "jobs finished per second on the slow link": rate(slowed_at, healed_at),
            "jobs finished per second after": rate(healed_at, stopped_at),
        }
    )
    return outcome


def _seconds(moment: float | None, since: float) -> str:
    return "never" if moment is None else f"{moment - since:.1f}"
