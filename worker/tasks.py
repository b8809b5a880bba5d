"""Celery tasks of the GPU worker; the message carries only the job id."""

from __future__ import annotations

from broker.names import GENERATE_TASK_NAME
from worker.celery_app import celery_app, get_runtime
from worker.runner import run_job


@celery_app.task(name=GENERATE_TASK_NAME, ignore_result=True, acks_late=True)
def generate(job_id: str) -> None:
    """Run the stored job with this id."""
    run_job(get_runtime(), job_id)
