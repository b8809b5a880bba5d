"""Per-owner quotas on uploaded files, the count and the stored bytes, kept in Redis and shared by every API process.

Each upload is counted from its first write: every batch of chunks is appended to the file's text by the same
script that checks and counts it, so uploads racing from one key can't together pass the quota. A file counts
until it is deleted or expires: each entry carries the time it stops counting (the file's expiry once stored, a
short lease while it is being written, renewed by each write), and lapsed entries are shed whenever the quota is
read, so a file key expiring on its own never leaves the count high.
"""

from __future__ import annotations

import redis

from core.errors import TooManyRequests
from core.redis.errors import redis_boundary
from core.redis.keys import OPENAI_FILE_USAGE_BYTES_KEY, OPENAI_FILE_USAGE_KEY

# How long an upload's written chunks and its place in the quota outlive its last write: an upload whose API
# process died frees both this long after, not when the file would have expired.
UPLOAD_LEASE_S = 3600
# A quota is freed by a delete or an expiry, which may be days away: the hint is capped at an hour.
MAX_RETRY_AFTER_S = 3600

# Atomically: shed lapsed entries; refuse a new file past the count, or bytes past the byte quota (0, which limit,
# what is used, seconds until the first entry stops counting); else append the chunks to the file's text and count
# them (1, "", used, 0).
# KEYS: usage (zset), usage bytes (hash), the file's text (list).
# ARGV: file id, lease s, max files, max bytes, bytes added, usage keys' ttl s, chunks...
_WRITE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], lapsed)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local frees_in = math.ceil(tonumber(first[2] or now) - now)
local count = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and count >= tonumber(ARGV[3]) then
  return {0, 'files', count, frees_in}
end
local used = 0
for _, size in ipairs(redis.call('HVALS', KEYS[2])) do
  used = used + tonumber(size)
end
local adding = tonumber(ARGV[5])
if used + adding > tonumber(ARGV[4]) then
  return {0, 'bytes', used, frees_in}
end
if #ARGV > 6 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 7))
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
redis.call('HINCRBY', KEYS[2], ARGV[1], adding)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return {1, '', used + adding, 0}
"""


class FileQuota:
    """MAX_FILES_PER_KEY files and MAX_FILE_BYTES_PER_KEY bytes per owner; past either, TooManyRequests."""

    def __init__(self, client: redis.Redis, *, max_files: int, max_bytes: int, file_ttl_s: int) -> None:
        self.redis = client
        self.max_files = max_files
        self.max_bytes = max_bytes
        # Every entry stops counting within a file's lifetime of the latest write, so the keys may go then.
        self.keys_ttl_s = file_ttl_s + UPLOAD_LEASE_S
        self._write = client.register_script(_WRITE)

    def write(self, owner: str, file_id: str, content_key: str, chunks: list[str], adding_bytes: int) -> None:
        """Count `adding_bytes` more for this upload and append its chunks, or refuse both (TooManyRequests)."""
        keys = [OPENAI_FILE_USAGE_KEY.format(owner=owner), OPENAI_FILE_USAGE_BYTES_KEY.format(owner=owner), content_key]
        args = [file_id, UPLOAD_LEASE_S, self.max_files, self.max_bytes, adding_bytes, self.keys_ttl_s, *chunks]
        with redis_boundary():
            taken, limit, used, frees_in_s = self._write(keys=keys, args=args)
        if taken:
            return
        retry_after_s = max(1, min(MAX_RETRY_AFTER_S, int(frees_in_s)))
        if limit == "files":
            raise TooManyRequests(
                f"this API key has {used} files counted (uploads in progress included), its limit MAX_FILES_PER_KEY "
                f"= {self.max_files}: delete files it no longer needs, or wait for them to expire",
                retry_after_s=retry_after_s,
            )
        raise TooManyRequests(
            f"this upload would take this API key past its limit MAX_FILE_BYTES_PER_KEY = {self.max_bytes} bytes "
            f"({used} counted already): delete files it no longer needs, or wait for them to expire",
            retry_after_s=retry_after_s,
        )

    def stage_stored(self, pipe: redis.client.Pipeline, owner: str, file_id: str, size: int, expires_at: int) -> None:
        """In the transaction that stores the file: it counts, with its size, until it expires."""
        usage_key = OPENAI_FILE_USAGE_KEY.format(owner=owner)
        bytes_key = OPENAI_FILE_USAGE_BYTES_KEY.format(owner=owner)
        pipe.zadd(usage_key, {file_id: expires_at})
        pipe.hset(bytes_key, file_id, size)
        pipe.expire(usage_key, self.keys_ttl_s)
        pipe.expire(bytes_key, self.keys_ttl_s)

    @staticmethod
    def stage_release(pipe: redis.client.Pipeline, owner: str, file_id: str) -> None:
        """In the transaction that deletes the file (or drops a refused upload): it no longer counts."""
        pipe.zrem(OPENAI_FILE_USAGE_KEY.format(owner=owner), file_id)
        pipe.hdel(OPENAI_FILE_USAGE_BYTES_KEY.format(owner=owner), file_id)
