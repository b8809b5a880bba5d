"""The GPU worker's Celery app: it loads the model once when the worker starts and announces itself.

Start it with `celery -A worker.celery_app worker` (see scripts/run_local.py for the full command line).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

from core.errors import StoreUnavailable
from core.settings import get_settings

settings = get_settings()

celery_app = Celery("llm-worker", include=["worker.tasks"])
celery_app.config_from_object("celeryconfig")
celery_app.conf.broker_url = settings.effective_redis_url
celery_app.conf.task_default_queue = settings.gpu_queue
# Jobs run in the process that holds the model: no forking after CUDA starts (celery#3402). With batching,
# one thread per batch slot hands its job to the engine; prefetch 1 per thread keeps the reserve bounded.
if settings.max_batch_size > 1:
    celery_app.conf.worker_pool = "threads"
    celery_app.conf.worker_concurrency = settings.max_batch_size
else:
    celery_app.conf.worker_pool = "solo"
    celery_app.conf.worker_concurrency = 1

log = logging.getLogger("llm.worker")

_runtime = None
_stop_heartbeat = threading.Event()


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
        "gpu": runtime.sampler.gpu_name,
        "max_batch_size": settings.max_batch_size,
        "started_at": runtime.started_at,
    }


def _heartbeat_loop(name: str) -> None:
    interval_s = settings.worker_heartbeat_seconds
    while not _stop_heartbeat.is_set():
        try:
            get_runtime().store.register_worker(name, _worker_info(name), ttl_s=interval_s * 3)
        except StoreUnavailable as error:
            log.warning("heartbeat not written: %s", error)
        _stop_heartbeat.wait(interval_s)


@worker_init.connect
def load_model_at_start(sender=None, **_kwargs) -> None:
    """Load the model once, before the worker takes its first job."""
    global _runtime
    from worker.startup import build_runtime

    name = getattr(sender, "hostname", None) or f"gpu@{socket.gethostname()}"
    try:
        _runtime = build_runtime(settings, worker_name=name)
    except BaseException:
        # Celery would log this and serve on without a model: exit instead, so a supervisor sees it.
        log.critical("the model could not be loaded: the worker exits", exc_info=True)
        logging.shutdown()
        os._exit(3)


@worker_ready.connect
def announce_ready(sender=None, **_kwargs) -> None:
    """Start the heartbeat that /readyz reads."""
    name = get_runtime().worker_name
    threading.Thread(target=_heartbeat_loop, args=(name,), name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def withdraw(sender=None, **_kwargs) -> None:
    """Stop announcing this worker."""
    _stop_heartbeat.set()
    if _runtime is not None:
        _runtime.engine.shutdown()
        with contextlib.suppress(StoreUnavailable):
            _runtime.store.unregister_worker(_runtime.worker_name)
