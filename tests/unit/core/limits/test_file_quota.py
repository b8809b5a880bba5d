"""Per-owner file quotas in Redis: a write past the count or the bytes is refused whole (nothing appended), a
stored file counts until it expires or is released, and owners don't share quotas."""

from __future__ import annotations

import time

import pytest

from core.errors import TooManyRequests
from core.limits.file_quota import FileQuota


@pytest.fixture
def quota(client) -> FileQuota:
    return FileQuota(client, max_files=2, max_bytes=10, file_ttl_s=3600)


def test_writes_append_their_chunks_and_count_their_bytes(quota, client):
    quota.write("owner-a", "file-1", "content:1", ["abc", "de"], 5)
    quota.write("owner-a", "file-1", "content:1", ["fg"], 2)
    assert client.lrange("content:1", 0, -1) == ["abc", "de", "fg"]


def test_past_the_byte_quota_the_write_is_refused_and_nothing_is_appended(quota, client):
    quota.write("owner-a", "file-1", "content:1", ["x" * 8], 8)
    with pytest.raises(TooManyRequests, match="MAX_FILE_BYTES_PER_KEY = 10 bytes \\(8 counted already\\)"):
        quota.write("owner-a", "file-2", "content:2", ["y" * 3], 3)
    assert not client.exists("content:2")
    quota.write("owner-b", "file-3", "content:3", ["y" * 3], 3)  # another owner has its own quota


def test_past_the_file_count_a_new_file_is_refused_with_a_bounded_retry_hint(quota):
    quota.write("owner-a", "file-1", "c1", [], 0)
    quota.write("owner-a", "file-2", "c2", [], 0)
    with pytest.raises(TooManyRequests, match="2 files counted") as refused:
        quota.write("owner-a", "file-3", "c3", [], 0)
    assert 1 <= refused.value.retry_after_s <= 3600
    quota.write("owner-a", "file-2", "c2", ["more"], 1)  # a file already counted may go on


def test_a_released_file_stops_counting_and_a_lapsed_one_is_shed(quota, client):
    quota.write("owner-a", "file-1", "c1", [], 4)
    pipe = client.pipeline(transaction=True)
    quota.stage_stored(pipe, "owner-a", "file-2", 4, int(time.time()) - 1)  # its expiry has passed
    pipe.execute()
    pipe = client.pipeline(transaction=True)
    FileQuota.stage_release(pipe, "owner-a", "file-1")
    pipe.execute()
    quota.write("owner-a", "file-3", "c3", [], 10)  # neither counts any more: the whole quota is free
