"""A job's priority: which queued jobs a worker takes first."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator


class Priority(StrEnum):
    """Declared in the order jobs are taken: every queued job of an earlier priority goes before any of a later
    one. `batch` is for a batch's lines only; a job submitted alone asks for one of the others."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"
    BATCH = "batch"


# What `POST /jobs` accepts. Validated as plain strings, so a refusal lists them as a client wrote them, then typed.
SubmittedPriority = Annotated[Literal["high", "normal", "low"], AfterValidator(Priority)]
