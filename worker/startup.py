"""Building a GPU worker's runtime: logs, device, the one model load, the engine."""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.events.stream import TokenStreams, entries_cap
from core.jobs.model import utc_now_iso
from core.jobs.priority import Priority
from core.jobs.store import JobStore
from core.redis.clients import redis_client
from core.redis.replication import ReplicaAcks
from core.settings import Settings
from core.workers.registry import WorkerRegistry
from core.workers.reservations import WorkerReservations
from worker.batching_engine import BatchingEngine
from worker.engine_variant import EngineVariantUnavailable
from worker.generation import Engine
from worker.job_log import JobLog
from worker.model_loading import choose_device, gpu_name, load_model, pin_visible_gpu
from worker.resources import ResourceSampler, log_resources, setup_resource_logger
from worker.runner import WorkerRuntime
from worker.running_jobs import RunningJobs
from worker.sequential_engine import SequentialEngine
from worker.token_publisher import TokenPublisher

log = logging.getLogger("llm.worker")

_DEMO_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!!  DEMO MODEL: {path} holds random weights, so every answer is random text.\n"
    "!!  Put a real model in MODEL_DIR (fp16/ + tokenizer/, or a Hugging Face folder) to get real answers.\n" + "!" * 78
)


def build_runtime(
    settings: Settings,
    *,
    worker_name: str,
    republish: Callable[[str, Priority], None],
    wrap_engine: Callable[[Engine], Engine] | None = None,
) -> WorkerRuntime:
    """Load the model once and return everything the worker needs to run jobs."""
    pin_visible_gpu(settings.device)
    device = choose_device(settings.device)
    resource_log = setup_resource_logger(settings.log_dir)
    sampler = ResourceSampler(device.cuda_index, gpu_name(device))
    log_resources(resource_log, sampler, "Before model load")
    loaded = load_model(settings, device)
    log_resources(resource_log, sampler, "After model load")
    if loaded.paths.is_demo:
        log.warning(_DEMO_WARNING.format(path=loaded.paths.weights_dir.parent))
    engine: Engine = SequentialEngine(loaded)
    batch_size = 1
    if settings.max_batch_size > 1:
        try:
            engine = BatchingEngine(loaded, settings)
            batch_size = settings.max_batch_size
            log.info("continuous batching: up to %d jobs share the model", settings.max_batch_size)
        except EngineVariantUnavailable:
            raise  # the ENGINE_* settings name an engine this machine can't run: serving another would hide it
        except Exception:  # noqa: BLE001 - an architecture the batching manager can't run still gets served
            log.exception("continuous batching is not available for this model: serving one job at a time")
    else:
        log.info("MAX_BATCH_SIZE=1: one job at a time, one generate each")
    if wrap_engine is not None:
        engine = wrap_engine(engine)
        log.warning("engine wrapped by %s", getattr(wrap_engine, "__qualname__", wrap_engine))
    store = JobStore(
        redis_client(settings),
        job_ttl_s=settings.job_ttl_seconds,
        queue=settings.gpu_queue,
    )
    return WorkerRuntime(
        settings=settings,
        store=store,
        engine=engine,
        sampler=sampler,
        resource_log=resource_log,
        worker_name=worker_name,
        model_name=loaded.paths.name,
        model_load_seconds=loaded.load_seconds,
        dtype_name=loaded.dtype_name,
        started_at=utc_now_iso(),
        republish=republish,
        running=RunningJobs(store),
        workers=WorkerRegistry(store.redis),
        reservations=WorkerReservations(store.redis),
        replicas=ReplicaAcks.from_settings(store.redis, settings),
        job_log=JobLog(settings.log_dir, max_bytes=settings.job_log_max_bytes, include_prompts=settings.log_prompts),
        publisher=TokenPublisher(
            TokenStreams(store.redis, max_entries=entries_cap(settings.max_tokens_limit)), loaded.tokenizer
        ),
        batch_size=batch_size,
    )
