"""How fast a batch goes and when it should be done, from its counters: what a progress bar shows beside done/total."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from core.jobs.model import parse_iso


class BatchPace(BaseModel):
    """A batch's tokens per second and seconds left; None while unknown."""

    tokens_per_second: float | None
    eta_seconds: float | None


def batch_rates(
    *,
    started_at: str | None,
    completed_at: str | None,
    total: int,
    finished: int,
    completion_tokens: int,
    now: datetime | None = None,
) -> BatchPace:
    """`tokens_per_second`: tokens generated over the time since the first job started (until the last one ended);
    `eta_seconds`: the lines left at the pace of the lines finished so far, 0 once done. None while unknown (nothing
    started, or nothing finished yet)."""
    if started_at is None:
        return BatchPace(tokens_per_second=None, eta_seconds=None)
    end = parse_iso(completed_at) if completed_at else (now or datetime.now(UTC))
    elapsed_s = max((end - parse_iso(started_at)).total_seconds(), 0.0)
    tokens_per_second = round(completion_tokens / elapsed_s, 3) if elapsed_s > 0 else None
    left = max(total - finished, 0)
    if completed_at or left == 0:
        eta_seconds: float | None = 0.0
    elif finished > 0:
        eta_seconds = round(elapsed_s / finished * left, 1)
    else:
        eta_seconds = None
    return BatchPace(tokens_per_second=tokens_per_second, eta_seconds=eta_seconds)
