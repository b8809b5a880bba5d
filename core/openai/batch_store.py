"""The OpenAI batch records in Redis: kept while their batch runs, then as long as their output files."""

from __future__ import annotations

import redis

from core.batches.model import is_batch_id
from core.errors import BatchNotFound, InvalidInput
from core.openai.batch_records import OpenAIBatch
from core.owners.index import owned_by, page_newest_first, shed_expired_index_entries, stage_index_expiry
from core.redis.errors import redis_boundary
from core.redis.keys import (
    OPENAI_BATCH_FINALIZING_KEY,
    OPENAI_BATCH_KEY,
    OPENAI_BATCH_OWNER_INDEX_KEY,
    OPENAI_BATCH_SEQUENCE_KEY,
)

# Writing a 50,000-line batch's files takes seconds; a finalizer that died frees the batch for another after this.
FINALIZE_LOCK_S = 300


class OpenAIBatchStore:
    """The OpenAI batch records: kept while their batch runs, then as long as their output files."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    @redis_boundary()
    def add(self, record: OpenAIBatch) -> OpenAIBatch:
        """Store a new record and list it; one already stored under its id (a retried create) wins."""
        key = OPENAI_BATCH_KEY.format(batch_id=record.id)
        finished = record.failed_at is not None
        if not self.redis.set(key, record.model_dump_json(), nx=True, ex=self.ttl_s if finished else None):
            return self.get(record.id) or record
        index_key = OPENAI_BATCH_OWNER_INDEX_KEY.format(owner=record.owner)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(index_key, {record.id: self.redis.incr(OPENAI_BATCH_SEQUENCE_KEY)})
        if finished:
            stage_index_expiry(pipe, index_key, record.id, self.ttl_s)
        pipe.execute()
        return record

    @redis_boundary()
    def save(self, record: OpenAIBatch) -> None:
        """Write a changed record; a finished one starts its expiry clock (and its listing entry's) now."""
        key = OPENAI_BATCH_KEY.format(batch_id=record.id)
        pipe = self.redis.pipeline(transaction=True)
        if record.final_status is not None:
            pipe.set(key, record.model_dump_json(), ex=self.ttl_s)
            index_key = OPENAI_BATCH_OWNER_INDEX_KEY.format(owner=record.owner)
            stage_index_expiry(pipe, index_key, record.id, self.ttl_s)
        else:
            pipe.set(key, record.model_dump_json(), keepttl=True)
        pipe.execute()

    @redis_boundary()
    def get(self, batch_id: str) -> OpenAIBatch | None:
        raw = self.redis.get(OPENAI_BATCH_KEY.format(batch_id=batch_id))
        return OpenAIBatch.model_validate_json(raw) if raw else None

    def get_for_owner(self, batch_id: str, owner: str) -> OpenAIBatch:
        """The record if this owner may see it; another owner's is as unknown as a missing one."""
        found = self.get(batch_id) if is_batch_id(batch_id) else None
        return owned_by(found, owner, BatchNotFound(f"no batch with id {batch_id!r}"))

    @redis_boundary()
    def list_for_owner(self, owner: str, *, limit: int, after: str | None) -> tuple[list[OpenAIBatch], bool]:
        """Up to `limit` records, newest first, after the batch `after`; and whether more follow."""
        shed_expired_index_entries(self.redis)
        index_key = OPENAI_BATCH_OWNER_INDEX_KEY.format(owner=owner)
        before = None
        if after:
            score = self.redis.zscore(index_key, after)
            if score is None:
                raise InvalidInput(f"after: {after!r} is not one of your listed batches", field="after")
            before = int(score)
        found, next_cursor = page_newest_first(
            self.redis, index_key, self._load_many, limit=limit, before_sequence=before
        )
        return found, next_cursor is not None

    def _load_many(self, batch_ids: list[str]) -> list[OpenAIBatch | None]:
        raws = self.redis.mget([OPENAI_BATCH_KEY.format(batch_id=batch_id) for batch_id in batch_ids])
        return [OpenAIBatch.model_validate_json(raw) if raw else None for raw in raws]

    @redis_boundary()
    def try_finalizing(self, batch_id: str) -> bool:
        """Take the right to write this batch's output files (held FINALIZE_LOCK_S at most)."""
        return bool(
            self.redis.set(OPENAI_BATCH_FINALIZING_KEY.format(batch_id=batch_id), "1", nx=True, ex=FINALIZE_LOCK_S)
        )

    @redis_boundary()
    def done_finalizing(self, batch_id: str) -> None:
        self.redis.delete(OPENAI_BATCH_FINALIZING_KEY.format(batch_id=batch_id))
