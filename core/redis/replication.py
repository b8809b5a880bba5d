"""The promise behind a 202 with replicas: a write counts once REDIS_MIN_REPLICA_ACKS replicas hold it (WAIT)."""

from __future__ import annotations

import redis

from core.errors import StoreUnavailable
from core.redis.errors import RETRY_AFTER_S, redis_boundary
from core.redis.keys import REPLICATION_MARK_KEY
from core.settings import Settings


class ReplicaAcks:
    """Waits until the replicas hold every write made so far, or says (StoreUnavailable) that they don't yet."""

    def __init__(self, client: redis.Redis, *, needed: int, timeout_ms: int) -> None:
        self.client = client
        self.needed = needed
        self.timeout_ms = timeout_ms

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> ReplicaAcks:
        """REDIS_MIN_REPLICA_ACKS replicas within REDIS_REPLICA_ACK_TIMEOUT_MS (0 replicas: nothing to wait for)."""
        return cls(client, needed=settings.redis_min_replica_acks, timeout_ms=settings.redis_replica_ack_timeout_ms)

    def confirm(self, job_id: str | None = None) -> None:
        """Return once enough replicas hold every write the master took before this call; else StoreUnavailable
        naming `job_id`, the job the caller's write stored (it exists on the master and may yet survive)."""
        if self.needed == 0:
            return
        try:
            with redis_boundary():
                # WAIT counts replicas up to this connection's last write, and replication is one ordered stream:
                # a write of our own on the same connection makes it cover every earlier write, of any connection.
                pipe = self.client.pipeline(transaction=False)
                pipe.incr(REPLICATION_MARK_KEY)
                pipe.execute_command("WAIT", self.needed, self.timeout_ms)
                _, acked = pipe.execute()
        except StoreUnavailable as error:
            error.job_id = error.job_id or job_id
            raise
        if int(acked) < self.needed:
            raise StoreUnavailable(
                "the job store could not copy this write to a replica in time; try again",
                detail=f"WAIT {self.needed} {self.timeout_ms}: {acked} replicas acknowledged",
                retry_after_s=RETRY_AFTER_S,
                job_id=job_id,
            )
