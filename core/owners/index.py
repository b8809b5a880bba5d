"""What an owner sees of their records: one by id, pages of them newest first, and listings that shed the ids
of records that expired."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import redis

from core.errors import NotFound
from core.redis.keys import EXPIRING_INDEX_ENTRIES_KEY

SHED_PER_CALL = 100  # expired index entries dropped per call: bounded work on every write that calls it
MIN_PAGE_READ = 50  # ids read per round trip when filling a page (a status filter may skip many)


class Owned(Protocol):
    owner: str


OwnedRecord = TypeVar("OwnedRecord", bound=Owned)


def owned_by(record: OwnedRecord | None, owner: str, not_found: NotFound) -> OwnedRecord:
    """The record if this owner may see it; another owner's record is as unknown as a missing one."""
    if record is None or record.owner != owner:
        raise not_found
    return record


def page_newest_first(
    client: redis.Redis,
    index_key: str,
    load: Callable[[list[str]], list[OwnedRecord | None]],
    *,
    limit: int,
    before_sequence: int | None,
    keep: Callable[[OwnedRecord], bool] = lambda record: True,
) -> tuple[list[OwnedRecord], int | None]:
    """Up to `limit` records that `keep` accepts, newest first, older than the cursor; and the next cursor.

    Pages are filled: ids whose records are gone (they are removed from the index on the way) or that `keep`
    refuses don't make a page short.
    """
    upper = f"({before_sequence}" if before_sequence is not None else "+inf"
    found: list[OwnedRecord] = []
    read_size = max(limit, MIN_PAGE_READ)
    while len(found) < limit:
        rows = client.zrevrangebyscore(index_key, upper, "-inf", start=0, num=read_size, withscores=True)
        if not rows:
            return found, None
        gone: list[str] = []
        for (record_id, sequence), record in zip(rows, load([record_id for record_id, _ in rows]), strict=True):
            upper = f"({int(sequence)}"
            if record is None:
                gone.append(record_id)
            elif keep(record):
                found.append(record)
                if len(found) == limit:
                    return found, int(sequence)
        if gone:
            client.zrem(index_key, *gone)
    return found, None


def stage_index_expiry(pipe: redis.client.Pipeline, index_key: str, record_id: str, ttl_s: int) -> None:
    """Note, in a transaction that sets a record's expiry, when its index entry is to go with it."""
    pipe.zadd(EXPIRING_INDEX_ENTRIES_KEY, {f"{index_key}|{record_id}": time.time() + ttl_s})


def shed_expired_index_entries(client: redis.Redis, limit: int = SHED_PER_CALL) -> int:
    """Remove from the owner indexes up to `limit` ids whose records have expired; returns how many."""
    members = client.zrangebyscore(EXPIRING_INDEX_ENTRIES_KEY, "-inf", time.time(), start=0, num=limit)
    if not members:
        return 0
    pipe = client.pipeline(transaction=False)
    for member in members:
        index_key, _, record_id = member.rpartition("|")
        pipe.zrem(index_key, record_id)
    pipe.zrem(EXPIRING_INDEX_ENTRIES_KEY, *members)
    pipe.execute()
    return len(members)
