"""An owner's listings: another owner's record is unknown, pages are filled past missing and filtered records, and
entries whose records expired are shed."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from core.errors import NotFound
from core.owners.index import owned_by, page_newest_first, shed_expired_index_entries, stage_index_expiry
from core.redis.keys import EXPIRING_INDEX_ENTRIES_KEY

INDEX = "test:index"


@dataclass
class Record:
    id: str
    owner: str = "owner-a"
    kept: bool = True


def test_another_owners_record_reads_as_missing():
    record = Record("r1")
    assert owned_by(record, "owner-a", NotFound("no")) is record
    for owner, found in (("owner-b", record), ("owner-a", None)):
        with pytest.raises(NotFound):
            owned_by(found, owner, NotFound("no"))


def test_pages_are_filled_past_gone_and_refused_records_and_gone_ids_leave_the_index(client):
    records = {f"r{n}": Record(f"r{n}", kept=n % 2 == 0) for n in range(1, 9)}
    client.zadd(INDEX, {record_id: int(record_id[1:]) for record_id in records})
    del records["r3"]  # its record expired: its id is still listed

    def load(ids):
        return [records.get(record_id) for record_id in ids]

    def keep(record) -> bool:
        return record.kept

    page, cursor = page_newest_first(client, INDEX, load, limit=2, before_sequence=None, keep=keep)
    assert [record.id for record in page] == ["r8", "r6"] and cursor == 6
    rest, end = page_newest_first(client, INDEX, load, limit=5, before_sequence=cursor, keep=keep)
    assert [record.id for record in rest] == ["r4", "r2"] and end is None
    assert client.zscore(INDEX, "r3") is None


def test_expired_entries_are_shed_in_bounded_rounds(client):
    client.zadd(INDEX, {"old-1": 1, "old-2": 2, "fresh": 3})
    pipe = client.pipeline(transaction=True)
    for record_id in ("old-1", "old-2"):
        stage_index_expiry(pipe, INDEX, record_id, ttl_s=-1)  # its record expired already
    stage_index_expiry(pipe, INDEX, "fresh", ttl_s=3600)
    pipe.execute()
    assert shed_expired_index_entries(client, limit=1) == 1
    assert shed_expired_index_entries(client) == 1 and shed_expired_index_entries(client) == 0
    assert client.zrange(INDEX, 0, -1) == ["fresh"]
    assert client.zscore(EXPIRING_INDEX_ENTRIES_KEY, f"{INDEX}|fresh") > time.time()
