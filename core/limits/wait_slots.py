"""A bound on the synchronous waits one owner has in flight (MAX_WAITS_PER_KEY), shared by every API process."""

from __future__ import annotations

import redis

from core.limits.long_requests import LongRequests
from core.limits.owner_slots import SLOT_MARGIN_S, OwnerSlots
from core.redis.keys import WAIT_SLOTS_KEY


class WaitSlots(OwnerSlots):
    """At most `limit` waits per owner at once (a streamed completion waits too); a slot is taken before the job
    is created, so a refusal creates nothing."""

    def __init__(self, client: redis.Redis, *, limit: int, wait_s: float, process: LongRequests | None = None) -> None:
        super().__init__(
            client,
            key=WAIT_SLOTS_KEY,
            limit=limit,
            hold_s=wait_s + SLOT_MARGIN_S,
            refusal=(
                f"this API key already has {limit} synchronous calls waiting (MAX_WAITS_PER_KEY); wait for one to "
                "finish, or submit with POST /jobs and poll"
            ),
            process=process,
        )
