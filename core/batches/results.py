"""A batch's native result lines (`GET /batches/<id>/results`): one per input line, in input order."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field

from core.jobs.model import Job, JobStatus
from core.jobs.records import JobError, JobOutput, JobUsage
from core.json_lines import one_line


class BatchResultLine(BaseModel):
    """One input line's job: its status, output, error and usage; only its id and `expired` once it is no longer kept
    (`output`, `error` and `usage` are then absent)."""

    custom_id: str | None = Field(description="The input line's `custom_id`; null once the job has expired.")
    job_id: str
    status: JobStatus | Literal["expired"]
    output: JobOutput | None = None
    error: JobError | None = None
    usage: JobUsage | None = None

    @classmethod
    def of(cls, job_id: str, job: Job | None) -> Self:
        """The line of a batch's job, or of a job no longer kept (None)."""
        if job is None:
            return cls(custom_id=None, job_id=job_id, status="expired")
        return cls(
            custom_id=job.custom_id,
            job_id=job.id,
            status=job.status,
            output=job.output,
            error=job.error,
            usage=job.usage,
        )

    def jsonl(self) -> str:
        """The line as sent: JSON with non-ASCII kept, the fields never set left out, and a newline."""
        unset = set(type(self).model_fields) - self.model_fields_set
        return one_line(self.model_dump(mode="json", exclude=unset)) + "\n"
