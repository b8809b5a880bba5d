"""Running one job: take it, sample resources around its generation, record the outcome once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.errors import JobNotFound, WrongState
from core.jobs import GenerationInput, Job, JobStatus, parse_iso, utc_now_iso
from core.settings import Settings
from core.store import JobStore
from worker.generation import Engine, EngineFailed, EngineInputError, EngineOutOfMemory, GenerationResult
from worker.resources import ResourceSampler, log_resources

log = logging.getLogger("llm.worker")


@dataclass
class WorkerRuntime:
    """Everything a GPU worker process holds for its whole life: built once, at start."""

    settings: Settings
    store: JobStore
    engine: Engine
    sampler: ResourceSampler
    resource_log: logging.Logger
    worker_name: str
    model_name: str
    started_at: str


def _seconds_between(start_iso: str, end_iso: str) -> float:
    return round((parse_iso(end_iso) - parse_iso(start_iso)).total_seconds(), 6)


def _metrics(job: Job, result: GenerationResult) -> dict[str, float | None]:
    return {
        "queue_seconds": _seconds_between(job.created_at, job.started_at or job.created_at),
        "time_to_first_token_seconds": (
            round(result.time_to_first_token_s, 6) if result.time_to_first_token_s is not None else None
        ),
        "generation_seconds": round(result.generation_s, 6),
        "tokens_per_second": (
            round(result.completion_tokens / result.generation_s, 3) if result.generation_s > 0 else None
        ),
    }


def run_job(runtime: WorkerRuntime, job_id: str) -> None:
    """Execute one queued job; a job that is missing or no longer queued is skipped."""
    store = runtime.store

    def mark_started(job: Job) -> None:
        job.started_at = utc_now_iso()
        job.attempts += 1
        job.worker = runtime.worker_name

    try:
        job = store.transition(job_id, JobStatus.RUNNING, mark_started)
    except (JobNotFound, WrongState) as reason:
        log.info("job %s skipped: %s", job_id, reason)
        return

    params = GenerationInput.model_validate(job.input)
    before, before_line = log_resources(runtime.resource_log, runtime.sampler, "Before generation", job_id)
    result: GenerationResult | None = None
    error: dict[str, str] | None = None
    with runtime.sampler.peak_window() as peak:
        try:
            result = runtime.engine.generate(params)
        except EngineInputError as failure:
            error = {"type": "invalid_input", "message": str(failure)}
        except EngineOutOfMemory as failure:
            error = {"type": "out_of_memory", "message": f"the device ran out of memory: {failure}"}
        except EngineFailed as failure:
            error = {"type": "generation_error", "message": str(failure)}
        except Exception as failure:  # any engine failure fails this job only; the worker serves on
            log.exception("job %s: generation failed", job_id)
            error = {"type": "generation_error", "message": f"{type(failure).__name__}: {failure}"}
    after, after_line = log_resources(runtime.resource_log, runtime.sampler, "After generation", job_id)
    if runtime.settings.empty_cuda_cache_after_job:
        runtime.engine.release_cached_memory()

    def record_outcome(job: Job) -> None:
        job.completed_at = utc_now_iso()
        job.logs = [*job.logs, before_line, after_line]
        job.resources = {
            "before": before.as_dict(),
            "after": after.as_dict(),
            "peak_vram_allocated_gb": round(peak.allocated_gb, 2),
            "peak_vram_reserved_gb": round(peak.reserved_gb, 2),
            "batch_size": result.batch_size if result is not None else 1,
        }
        if result is not None:
            job.output = {"text": result.text, "finish_reason": result.finish_reason}
            job.usage = {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            }
            job.metrics = _metrics(job, result)
        else:
            job.error = error

    final_status = JobStatus.SUCCEEDED if result is not None else JobStatus.FAILED
    try:
        store.transition(job_id, final_status, record_outcome)
    except (JobNotFound, WrongState) as reason:
        log.warning("job %s: outcome not recorded: %s", job_id, reason)
        return
    log.info("job %s %s", job_id, final_status.value)
