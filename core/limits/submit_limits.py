"""Per-owner limits checked when work is submitted: who may ask for `priority: high`, how much one may queue."""

from __future__ import annotations

from core.errors import Forbidden, TooManyRequests
from core.jobs.priority import Priority
from core.jobs.store import JobStore
from core.owners.ids import owner_id_for_key
from core.settings import Settings

# A full queue of one owner drains at the worker's pace; a few seconds before trying again is a fair hint.
QUEUED_RETRY_AFTER_S = 10


class OwnerLimits:
    """Keeps one owner from crowding out the others: a cap on its queued jobs and a list of who may jump the line."""

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.store = store
        self.max_queued = settings.max_queued_per_key
        # An open service (no API_KEYS) has one owner, who may use every priority.
        self.high_priority_owners: set[str] | None = (
            {owner_id_for_key(key) for key in settings.high_priority_keys} if settings.api_keys else None
        )

    def check_priority(self, priority: Priority, owner: str) -> None:
        """Refuse (Forbidden) `priority: high` from an owner whose key is not in HIGH_PRIORITY_KEYS."""
        if priority != Priority.HIGH or self.high_priority_owners is None:
            return
        if owner not in self.high_priority_owners:
            raise Forbidden("priority: this API key may not use `high` (see HIGH_PRIORITY_KEYS)", field="priority")

    def check_queued(self, owner: str, adding: int) -> None:
        """Refuse (TooManyRequests) work that would take this owner past MAX_QUEUED_PER_KEY queued jobs.

        A read, then the write: submissions racing at the edge may pass the cap by the few that raced, which a
        soft fairness cap tolerates; the count itself never drifts (it moves with every queue transition).
        """
        queued = self.store.queued_count(owner)
        if queued + adding > self.max_queued:
            raise TooManyRequests(
                f"this API key has {queued} jobs queued; {adding} more would pass its limit MAX_QUEUED_PER_KEY = "
                f"{self.max_queued}",
                retry_after_s=QUEUED_RETRY_AFTER_S,
            )
