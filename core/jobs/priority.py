"""A job's priority: which queued jobs a worker takes first."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator


class Priority(StrEnum):
    """A job's priority: every queued job of an earlier one is taken before any of a later one."""

    # Declared in that order. `batch` is for a batch's lines only; a job submitted alone asks for another.
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"
    BATCH = "batch"


# What `POST /jobs` accepts. Validated as plain strings, so a refusal lists them as a client wrote them, then typed.
SubmittedPriority = Annotated[Literal["high", "normal", "low"], AfterValidator(Priority)]
