"""`LOG_DIR/jobs.jsonl`: one JSON line per job this worker finishes, for operators to query (jq, grep), rotated
by size beside the resource log. Prompts and outputs are user data: they go in only with LOG_PROMPTS=true."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from core.jobs.model import Job
from core.json_lines import one_line

JOB_LOG_FILE = "jobs.jsonl"
BACKUP_COUNT = 5  # rotated files kept, as for the resource log


def job_log_record(job: Job, *, include_prompts: bool) -> dict[str, Any]:
    """What the line of a finished job holds."""
    record: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "finish_reason": job.output.finish_reason if job.output is not None else None,
        "error_type": job.error.type.value if job.error is not None else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "timings": job.metrics,
        "usage": job.usage.model_dump() if job.usage is not None else None,
        "resources": job.resources.model_dump(mode="json") if job.resources is not None else None,
        "worker": job.worker,
        "batch_size": job.resources.batch_size if job.resources is not None else None,
        "attempts": job.attempts,
        "priority": job.priority,
        "batch_id": job.batch_id,
        "custom_id": job.custom_id,
    }
    if include_prompts:
        record["input"] = job.input.model_dump(mode="json", include={"prompt", "messages"}, exclude_none=True)
        record["output"] = job.output.text if job.output is not None else None
    return record


class JobLog:
    """Writes the lines; job threads share it (the handler writes each line whole, under its own lock)."""

    def __init__(self, log_dir: Path, *, max_bytes: int, include_prompts: bool) -> None:
        self.include_prompts = include_prompts
        log_dir.mkdir(parents=True, exist_ok=True)
        self.path = log_dir / JOB_LOG_FILE
        # A handler of its own rather than a named logger: the lines go to this file only, never to the console.
        self.handler = RotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=BACKUP_COUNT, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, job: Job) -> None:
        """One line for this finished job."""
        line = one_line(job_log_record(job, include_prompts=self.include_prompts))
        self.handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))

    def close(self) -> None:
        self.handler.close()
