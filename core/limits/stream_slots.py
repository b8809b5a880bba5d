"""A bound on the event streams one owner has open (MAX_STREAMS_PER_KEY), shared by every API process."""

from __future__ import annotations

import redis

from core.limits.long_requests import LongRequests
from core.limits.owner_slots import SLOT_MARGIN_S, OwnerSlots
from core.redis.keys import STREAM_SLOTS_KEY


class StreamSlots(OwnerSlots):
    """At most `limit` open `GET /jobs/<id>/events` streams per owner; each lapses after the longest a stream
    lasts (SSE_MAX_STREAM_SECONDS), so a killed API process leaks none for longer."""

    def __init__(
        self, client: redis.Redis, *, limit: int, max_stream_s: float, process: LongRequests | None = None
    ) -> None:
        super().__init__(
            client,
            key=STREAM_SLOTS_KEY,
            limit=limit,
            hold_s=max_stream_s + SLOT_MARGIN_S,
            refusal=(
                f"this API key already has {limit} event streams open (MAX_STREAMS_PER_KEY); close one, or poll "
                "GET /jobs/<id>"
            ),
            process=process,
        )
