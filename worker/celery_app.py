"""The GPU worker's Celery app: it loads the model once when the worker starts and announces itself.

Start it with `celery -A worker.celery_app worker` (scripts/service_processes.py has the full command line).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down

from broker.app import new_celery_app
from broker.publisher import JobPublisher
from core.errors import StoreUnavailable
from core.settings import get_settings

settings = get_settings()

celery_app = new_celery_app("llm-worker", settings, include=["worker.tasks"])
# Jobs run in the process that holds the model: no forking after CUDA starts (celery#3402). With batching,
# one thread per batch slot hands its job to the engine; prefetch 1 per thread keeps the reserve bounded.
if settings.max_batch_size > 1:
    celery_app.conf.worker_pool = "threads"
    celery_app.conf.worker_concurrency = settings.max_batch_size
else:
    celery_app.conf.worker_pool = "solo"
    celery_app.conf.worker_concurrency = 1

log = logging.getLogger("llm.worker")

# A job still running this long past its deadline has a hung engine: only a new process can free the device.
WATCHDOG_GRACE_S = 30.0

_runtime = None
_stop_background = threading.Event()


def get_runtime():
    """The process's WorkerRuntime; the model is loaded by then."""
    if _runtime is None:
        raise RuntimeError("the worker runtime is not loaded (not started through `celery worker`?)")
    return _runtime


def _worker_info(name: str) -> dict:
    runtime = get_runtime()
    return {
        "name": name,
        "pid": os.getpid(),
        "model": runtime.model_name,
        "device": runtime.engine.device,
        "dtype": runtime.dtype_name,
        "gpu": runtime.sampler.gpu_name,
        "max_batch_size": settings.max_batch_size,
        "started_at": runtime.started_at,
        "model_load_seconds": round(runtime.model_load_seconds, 3),
    }


def _heartbeat_loop(name: str) -> None:
    interval_s = settings.worker_heartbeat_seconds
    while not _stop_background.is_set():
        try:
            get_runtime().store.register_worker(name, _worker_info(name), ttl_s=interval_s * 3)
        except StoreUnavailable as error:
            log.warning("heartbeat not written: %s", error)
        _stop_background.wait(interval_s)


def _watchdog_loop() -> None:
    while not _stop_background.wait(1.0):
        deadlines = list(get_runtime().deadlines.items())
        overdue = [job_id for job_id, deadline in deadlines if time.monotonic() > deadline + WATCHDOG_GRACE_S]
        if overdue:
            log.critical("jobs %s ignore their deadline (hung engine): the worker exits to free the device", overdue)
            logging.shutdown()
            os._exit(71)  # the supervisor restarts the worker; the reconciler requeues or fails the jobs


@contextlib.contextmanager
def _startup_logging():
    """Celery configures logging only after worker_init: until then the model load's INFO lines (load time,
    attention, KV-cache size) would be dropped, so they get a stderr handler of their own while the model loads."""
    worker_log = logging.getLogger("llm.worker")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"))
    previous_level = worker_log.level
    worker_log.addHandler(handler)
    worker_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        worker_log.removeHandler(handler)
        worker_log.setLevel(previous_level)


@worker_init.connect
def load_model_at_start(sender=None, **_kwargs) -> None:
    """Load the model once, before the worker takes its first job."""
    global _runtime
    from worker.startup import build_runtime

    hostname = getattr(sender, "hostname", None) or f"gpu@{socket.gethostname()}"
    # Unique per process: a restarted worker on the same host must not pass for the one that died.
    name = f"{hostname}#{os.getpid()}"
    try:
        with _startup_logging():
            _runtime = build_runtime(settings, worker_name=name)
    except BaseException:
        # Celery would log this and serve on without a model: exit instead, so a supervisor sees it.
        log.critical("the model could not be loaded: the worker exits", exc_info=True)
        logging.shutdown()
        os._exit(3)
    _runtime.republish = JobPublisher(settings, celery_app).publish


@worker_ready.connect
def announce_ready(sender=None, **_kwargs) -> None:
    """Start the heartbeat that /readyz and the reconciler read, and the hung-engine watchdog."""
    name = get_runtime().worker_name
    threading.Thread(target=_heartbeat_loop, args=(name,), name="heartbeat", daemon=True).start()
    threading.Thread(target=_watchdog_loop, name="watchdog", daemon=True).start()


@worker_shutting_down.connect
def start_grace_period(sig=None, how=None, exitcode=None, **_kwargs) -> None:
    """SIGTERM: Celery stops taking jobs; running ones get SHUTDOWN_GRACE_SECONDS, then go back to the queue."""
    if _runtime is None:
        return
    log.warning("stopping: running jobs have %.0f s to finish", settings.shutdown_grace_seconds)
    timer = threading.Timer(settings.shutdown_grace_seconds, _runtime.stopping.set)
    timer.daemon = True
    timer.start()


@worker_shutdown.connect
def withdraw(sender=None, **_kwargs) -> None:
    """Stop announcing this worker and stop the engine's threads."""
    _stop_background.set()
    if _runtime is not None:
        _runtime.stopping.set()
        _runtime.engine.shutdown()
        with contextlib.suppress(StoreUnavailable):
            _runtime.store.unregister_worker(_runtime.worker_name)
