"""One soak: start the service, run every kind of client while the nemesis strikes, go quiet, wait until every
accepted job is finished, run the checks, and keep the artifacts (every process's log, the execution log, the
summary) in the run's folder."""

from __future__ import annotations

import collections
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from tests.conftest import WEBHOOK_SECRET
from tests.soak import checks
from tests.soak.clients import KEY_HONOURING_ROUTES, KEYED_ROUTES, Clients
from tests.soak.evidence import TERMINAL, Reader, read_executions
from tests.soak.history import History
from tests.soak.hooks import FlakyReceiver
from tests.soak.nemesis import FAULTS, Nemesis
from tests.soak.world import SoakWorld

# Generous bounds, as the soak shares a slow, loaded machine: they bound a hang, they measure nothing.
CLIENTS_STOP_S = 200.0
NEMESIS_FINISH_S = 300.0
QUIESCENCE_S = 600.0
# The pause before terminal jobs are read again: long enough for a resumed stale attempt to write, if it could.
REREAD_PAUSE_S = 5.0


@dataclass(frozen=True)
class SoakConfig:
    seconds: float
    faults: int
    folder: Path
    model_dir: Path
    seed: int = 1
    fault_kinds: tuple[str, ...] = FAULTS


def run_soak(config: SoakConfig) -> dict:
    """Run one soak; returns its summary (also written to `summary.json` in the folder)."""
    config.folder.mkdir(parents=True, exist_ok=True)
    history = History()
    receiver = FlakyReceiver(config.seed).start()
    world = SoakWorld(config.folder, config.model_dir)
    started = time.monotonic()
    try:
        world.start()
        clients = Clients(world.url, history, receiver.url, config.seed)
        every_s = config.seconds / (config.faults + 1)
        nemesis = Nemesis(world, config.faults, every_s, config.seed, config.fault_kinds)
        clients.start()
        nemesis.start()
        time.sleep(config.seconds)
        nemesis.finish(NEMESIS_FINISH_S)
        clients.stop(CLIENTS_STOP_S)
        world.wait_ready(300)
        summary = _check(config, world, history, clients, nemesis, receiver)
    finally:
        world.close()
        receiver.stop()
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    (config.folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _wait_quiet(reader: Reader, clients: Clients, history: History) -> None:
    """Until every accepted job is finished and no webhook event is still pending, or QUIESCENCE_S has passed
    (the checks then report what is stuck)."""
    deadline = time.monotonic() + QUIESCENCE_S
    session = requests.Session()
    while time.monotonic() < deadline:
        if clients.poll_once(session) == 0 and not _webhooks_pending(reader, history):
            return
        time.sleep(2)


def _webhooks_pending(reader: Reader, history: History) -> bool:
    for job_id in list(history.webhook_jobs):
        job = reader.job(job_id)
        if job is not None and "pending" in job["webhook"]["state"].values():
            return True
    for batch_id, batch in history.batches.items():
        view = reader.batch(batch_id) if batch["webhook"] else None
        if view is not None and "pending" in ((view.get("webhook") or {}).get("state") or {}).values():
            return True
    return False


def _check(config, world, history, clients, nemesis, receiver) -> dict:
    reader = Reader(world.url, history)
    _wait_quiet(reader, clients, history)
    # A batch's lines are jobs too: known from its results, then waited for like the rest.
    results = {batch_id: reader.batch_results(batch_id) for batch_id in history.batches if reader.batch(batch_id)}
    for lines in results.values():
        for line in lines:
            history.accepted(line["job_id"], "batch-line")
    _wait_quiet(reader, clients, history)
    batches = {batch_id: reader.batch(batch_id) for batch_id in history.batches}
    final = reader.jobs(list(history.jobs))
    time.sleep(REREAD_PAUSE_S)
    reread = reader.jobs([job_id for job_id, job in final.items() if job and job["status"] in TERMINAL])
    executions = read_executions(world.execution_log)
    deliveries = receiver.deliveries(WEBHOOK_SECRET)
    listed = reader.listed_jobs()
    max_attempts = int(world.settings["MAX_ATTEMPTS"])
    keys = checks.keys_by_route(history, KEYED_ROUTES)
    violations = [
        *checks.lost_or_stuck(final),
        *checks.finished_jobs_never_change(history, final, reread),
        *checks.executions_within_attempts(executions, final, max_attempts, nemesis.sigtermed_pids),
        *checks.cancels_hold(history, final),
        *checks.webhooks_delivered(history, final, batches, deliveries),
        *checks.one_job_per_key(history, KEY_HONOURING_ROUTES),
        *checks.batches_add_up(history, batches, results, final),
        *checks.only_documented_errors(history),
        *checks.answers_name_stored_jobs(history, listed, set(history.jobs)),
        *([checks.violation("not recovered", "nemesis", nemesis.error)] if nemesis.error else []),
    ]
    return {
        "folder": str(config.folder),
        "seconds": config.seconds,
        "jobs_by_kind": dict(collections.Counter(history.jobs.values())),
        "jobs_by_final_status": dict(collections.Counter(job["status"] if job else "lost" for job in final.values())),
        "batches": len(history.batches),
        "faults": [asdict(fault) for fault in nemesis.faults],
        "restarts": dict(world.restarts),
        "answers": {f"{route} {status}": count for (route, status), count in sorted(history.statuses.items())},
        "answers_503": sum(count for (_, status), count in history.statuses.items() if status == 503),
        "connection_errors": dict(history.connection_errors),
        "retries": dict(history.retries),
        "executions": len(executions),
        "webhook_requests": len(deliveries),
        "webhook_events": len({(d.subject_id, d.event_type, d.attempt_of_job) for d in deliveries}),
        "idempotency_keys_by_route": keys,
        "routes_ignoring_idempotency_key": sorted(route for route, counts in keys.items() if counts["made_two"]),
        "routes_not_probed_for_idempotency": sorted(
            route for route, counts in keys.items() if not counts["sent_twice"]
        ),
        "unnamed_jobs": checks.unnamed_jobs(listed, set(history.jobs)),
        "clients_still_running": clients.still_running(),
        "violations": violations,
    }
