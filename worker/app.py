"""The GPU worker's Celery app, built from a settings object: the task, and the worker's life around the model.

`python -m worker` builds it and starts it (launcher/processes.py has the command line). The model is loaded
once, when the worker starts, in this process: jobs run here, so nothing forks after CUDA starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down

from broker.app import new_celery_app
from broker.canary import canary_queue
from broker.names import CANARY_TASK_NAME, GENERATE_TASK_NAME
from broker.publisher import JobPublisher
from core.errors import StoreUnavailable
from core.settings import Settings
from core.workers.info import WorkerInfo
from worker.consumer_canary import ConsumerCanary
from worker.engine_variant import EngineVariantUnavailable
from worker.generation import Engine
from worker.runner import WorkerRuntime, run_next_job

log = logging.getLogger("llm.worker")

# A job still running this long past its deadline has a hung engine: only a new process can free the device.
WATCHDOG_GRACE_S = 30.0
HUNG_ENGINE_EXIT_CODE = 71
MODEL_LOAD_FAILED_EXIT_CODE = 3
STUCK_CONSUMER_EXIT_CODE = 72


class GpuWorker:
    """One worker process's life: load the model at start, announce it, watch it, and stop it cleanly."""

    def __init__(self, settings: Settings, celery_app: Celery, wrap_engine: Callable[[Engine], Engine] | None):
        self.settings = settings
        self.celery_app = celery_app
        self.wrap_engine = wrap_engine
        self.runtime: WorkerRuntime | None = None
        self._stop_background = threading.Event()
        # Unique to this process: a worker restarted in the same container has the same hostname and often the
        # same pid (the container's init starts it first every time), and must not pass for the one that died.
        self.token = secrets.token_hex(4)
        self.canary_queue = canary_queue(settings.gpu_queue, self.token)
        self.canary = ConsumerCanary(
            settings.canary_interval_seconds, settings.canary_timeout_seconds, send=self._send_canary
        )
        self._stop_canary = threading.Event()

    def load(self, sender=None, **_kwargs) -> None:
        """worker_init: load the model once, before the worker takes its first job."""
        from worker.startup import build_runtime

        hostname = getattr(sender, "hostname", None) or f"gpu@{socket.gethostname()}"
        name = f"{hostname}#{os.getpid()}-{self.token}"
        try:
            with _startup_logging():
                self.runtime = build_runtime(
                    self.settings,
                    worker_name=name,
                    republish=JobPublisher(self.settings, self.celery_app).publish,
                    wrap_engine=self.wrap_engine,
                )
        except EngineVariantUnavailable as refusal:
            log.critical("the engine settings can't run on this machine, the worker exits: %s", refusal)
            logging.shutdown()
            os._exit(MODEL_LOAD_FAILED_EXIT_CODE)
        except BaseException:
            # Celery would log this and serve on without a model: exit instead, so a supervisor sees it.
            log.critical("the model could not be loaded: the worker exits", exc_info=True)
            logging.shutdown()
            os._exit(MODEL_LOAD_FAILED_EXIT_CODE)
        self._warn_about_namesakes(hostname)

    def _warn_about_namesakes(self, hostname: str) -> None:
        """Two live workers with one hostname still work (each has its own name in Redis), but the operator can't
        tell their log lines, Flower rows or `/readyz` entries apart."""
        with contextlib.suppress(StoreUnavailable):
            namesakes = [
                worker.name for worker in self.runtime.workers.live() if worker.name.rsplit("#", 1)[0] == hostname
            ]
            if namesakes:
                log.warning(
                    "another live worker has the hostname %s (%s): give each worker its own `--hostname`, "
                    "e.g. gpu0@%%h and gpu1@%%h",
                    hostname,
                    ", ".join(namesakes),
                )

    def run(self, job_id: str) -> None:
        """The task: a job was queued (this one); run the next queued job in fair order."""
        if self.runtime is None:
            raise RuntimeError("the worker runtime is not loaded (not started through `python -m worker`?)")
        if self.settings.max_batch_size == 1:
            # The solo pool runs the job on the consumer's own thread: it reads no message meanwhile.
            with self.canary.consumer_busy():
                run_next_job(self.runtime, job_id)
        else:
            run_next_job(self.runtime, job_id)

    def canary_received(self, sequence: int) -> None:
        """The canary task's body: never run, as its Strategy handles the message in the consumer itself."""

    def _send_canary(self, sequence: int) -> None:
        self.celery_app.send_task(
            CANARY_TASK_NAME, args=[sequence], queue=self.canary_queue.name, priority=0, retry=False
        )

    def _consumer_stopped(self, reason: str) -> None:
        """The consumer takes no more messages, yet the process lives: only a new process gets a new consumer."""
        runtime = self.runtime
        if self._stop_canary.is_set() or runtime.dying.is_set():
            return  # stopping anyway
        runtime.engine.stop_admitting()  # jobs waiting for a place go back to the queue at once
        runtime.stopping.set()  # running ones too, at their next step
        runtime.exit_after_hand_back(reason, code=STUCK_CONSUMER_EXIT_CODE)

    def announce(self, sender=None, **_kwargs) -> None:
        """worker_ready: start the heartbeat, the cancel poller and the engine watchdog."""
        runtime = self.runtime
        threads = [
            (self._heartbeat_loop, "heartbeat"),
            (self._watchdog_loop, "watchdog"),
            (lambda: runtime.running.poll_cancels_until(self._stop_background), "cancel-poller"),
        ]
        if self.settings.canary_timeout_seconds > 0:
            threads.append((lambda: self.canary.watch(self._stop_canary, self._consumer_stopped), "consumer-canary"))
        for target, name in threads:
            threading.Thread(target=target, name=name, daemon=True).start()

    def begin_grace(self, **_kwargs) -> None:
        """SIGTERM: Celery stops taking jobs; jobs still waiting for a slot go back to the queue at once, running
        ones get SHUTDOWN_GRACE_SECONDS, then go back to the queue too."""
        self._stop_canary.set()  # Celery stops consuming now: that is no stuck consumer
        if self.runtime is None:
            return
        log.warning("stopping: running jobs have %.0f s to finish", self.settings.shutdown_grace_seconds)
        self.runtime.engine.stop_admitting()
        timer = threading.Timer(self.settings.shutdown_grace_seconds, self.runtime.stopping.set)
        timer.daemon = True
        timer.start()

    def withdraw(self, **_kwargs) -> None:
        """worker_shutdown: stop announcing this worker and stop the engine's threads."""
        self._stop_background.set()
        self._stop_canary.set()
        if self.runtime is not None:
            self.runtime.stopping.set()
            self.runtime.engine.shutdown()
            with contextlib.suppress(StoreUnavailable):
                self.runtime.workers.unregister(self.runtime.worker_name)

    def _heartbeat_loop(self) -> None:
        runtime = self.runtime
        interval_s = self.settings.worker_heartbeat_seconds
        while not self._stop_background.is_set() and not runtime.dying.is_set():
            try:
                runtime.workers.register(self._info(), ttl_s=interval_s * 3)
                runtime.put_back_lost_reservations()
            except StoreUnavailable as error:
                log.warning("heartbeat not written: %s", error)
                self.canary.store_failed()
            self._stop_background.wait(interval_s)

    def _watchdog_loop(self) -> None:
        runtime = self.runtime
        while not self._stop_background.wait(1.0):
            if not runtime.engine.alive():
                runtime.exit_after_hand_back("the engine is dead")
            overdue = runtime.running.overdue(WATCHDOG_GRACE_S)
            if overdue:
                log.critical(
                    "jobs %s ignore their deadline (hung engine): the worker exits to free the device", overdue
                )
                logging.shutdown()
                os._exit(HUNG_ENGINE_EXIT_CODE)  # the supervisor restarts the worker; the reconciler requeues

    def _info(self) -> WorkerInfo:
        runtime = self.runtime
        return WorkerInfo(
            name=runtime.worker_name,
            pid=os.getpid(),
            model=runtime.model_name,
            device=runtime.engine.device,
            dtype=runtime.dtype_name,
            gpu=runtime.sampler.gpu_name,
            # What the engine runs, not what was asked: a model served one job at a time says 1.
            max_batch_size=runtime.batch_size,
            started_at=runtime.started_at,
            model_load_seconds=round(runtime.model_load_seconds, 3),
            # Live figures for GET /metrics and the metrics history, as fresh as the heartbeat.
            resources=runtime.sampler.sample(),
            running_jobs=runtime.running.count(),
            canary_queue=self.canary_queue.name,
            **self.canary.describe(),
        )


def create_worker_app(settings: Settings, *, wrap_engine: Callable[[Engine], Engine] | None = None) -> Celery:
    """The GPU worker's Celery app; `wrap_engine` lets a test put a fault around the real engine."""
    celery_app = new_celery_app("llm-worker", settings)
    if settings.max_batch_size > 1:
        # Twice the batch: one thread per batch place, and as many waiting for a place while their jobs stay
        # queued, so jobs that need the one-at-a-time lane never hold the batch's threads.
        celery_app.conf.worker_pool = "threads"
        celery_app.conf.worker_concurrency = 2 * settings.max_batch_size
    else:
        celery_app.conf.worker_pool = "solo"
        celery_app.conf.worker_concurrency = 1
    worker = GpuWorker(settings, celery_app, wrap_engine)
    celery_app.task(name=GENERATE_TASK_NAME, ignore_result=True, acks_late=True)(worker.run)
    celery_app.task(name=CANARY_TASK_NAME, ignore_result=True, Strategy=worker.canary.strategy)(worker.canary_received)
    # The canary's queue first: at equal priority the consumer's next free place goes to a waiting canary.
    queues = celery_app.amqp.queues
    queues.add(worker.canary_queue)
    queues.select([worker.canary_queue.name, settings.gpu_queue])
    worker_init.connect(worker.load, weak=False)
    worker_ready.connect(worker.announce, weak=False)
    worker_shutting_down.connect(worker.begin_grace, weak=False)
    worker_shutdown.connect(worker.withdraw, weak=False)
    return celery_app


def worker_argv(hostname: str) -> list[str]:
    """The Celery worker's command line inside `python -m worker`."""
    return ["worker", "--loglevel", "INFO", "--hostname", hostname, "--without-gossip", "--without-mingle"]


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
