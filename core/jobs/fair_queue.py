"""Fair turns on the GPU: which queued job a worker takes next.

Every message on the GPU queue stands for "one job was queued"; the worker that takes a message runs the job this
queue names, not necessarily the one the message was published for. Jobs wait here by priority (high, normal, low,
batch: a higher one always first) and, within a priority, in one line per owner (API key); owners take turns, so a
key with 100,000 queued jobs and a key with one each get the next free place in turn.

The turns are kept as a virtual clock per priority: each owner with queued jobs has the time of its next turn, the
lowest goes next and moves on by the turns its job spends: one per row it takes in the batch, so a job with n
choices (n rows) spends n turns, and a key can't buy a larger share of the GPU by asking for more choices per job.
An owner that comes back after its line emptied joins at the current time, never before its last turn, so
submitting one job at a time buys no more turns than keeping a line.

A job is in exactly one of: its owner's line here, or the reservation set of the worker that took it (the take
reserves it in the same script), until it leaves `queued`. The job store stages the enqueue and dequeue in the
transactions that change a job's status.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from core.jobs.priority import Priority
from core.redis.keys import (
    FAIR_CLOCK_KEY,
    FAIR_MEMBERS_KEY,
    FAIR_OWNER_JOBS_KEY,
    FAIR_OWNERS_KEY,
    FAIR_SEQUENCE_KEY,
    FAIR_SERVED_KEY,
    FAIR_TURNS_KEY,
    RESERVING_WORKERS_KEY,
    WORKER_RESERVED_KEY,
)

# The order jobs are taken in: every queued job of an earlier priority goes before any of a later one.
PRIORITY_ORDER = tuple(Priority)

# KEYS: owner's line, owners by next turn, clock, last turns, members, sequence, turns per job.
# ARGV: owner, priority, front (1: ahead of the owner's line, for a job handed back), then per job: id, turns.
_ENQUEUE = """
local line, owners, clock, served, members, sequence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local turns = KEYS[7]
local owner, priority, front = ARGV[1], ARGV[2], ARGV[3] == '1'
local count = (#ARGV - 3) / 2
local score
if front then
  local first = redis.call('ZRANGE', line, 0, 0, 'WITHSCORES')
  score = (first[2] and tonumber(first[2]) or 0) - count - 1
else
  score = redis.call('INCRBY', sequence, count) - count
end
for i = 1, count do
  local job, spends = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  redis.call('ZADD', line, score + i, job)
  redis.call('HSET', members, job, priority)
  if spends > 1 then redis.call('HSET', turns, job, spends) end
end
if not redis.call('ZSCORE', owners, owner) then
  local now = tonumber(redis.call('GET', clock) or '0')
  local last = redis.call('HGET', served, owner)
  if last and tonumber(last) + 1 > now then now = tonumber(last) + 1 end
  redis.call('ZADD', owners, now, owner)
end
return count
"""

# KEYS: members, the worker's reservation set, reserving workers, turns per job; then per priority in
# PRIORITY_ORDER: owners by next turn, clock, last turns. ARGV: worker name, then per priority the prefix of its
# owners' lines. The owner's next turn comes as many turns later as its job spends (its last turn is the one before).
_TAKE = """
local members, reserved, reserving, turns, worker = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
local priorities = (#KEYS - 4) / 3
for p = 0, priorities - 1 do
  local owners, clock, served = KEYS[5 + 3 * p], KEYS[6 + 3 * p], KEYS[7 + 3 * p]
  local prefix = ARGV[2 + p]
  while true do
    local head = redis.call('ZRANGE', owners, 0, 0, 'WITHSCORES')
    if #head == 0 then break end
    local owner, turn = head[1], tonumber(head[2])
    local line = prefix .. owner
    local popped = redis.call('ZPOPMIN', line)
    if #popped == 0 then
      redis.call('ZREM', owners, owner)
    else
      local job = popped[1]
      local spends = tonumber(redis.call('HGET', turns, job) or '1')
      redis.call('SET', clock, turn)
      redis.call('HSET', served, owner, turn + spends - 1)
      if redis.call('ZCARD', line) > 0 then
        redis.call('ZADD', owners, turn + spends, owner)
      else
        redis.call('ZREM', owners, owner)
      end
      redis.call('HDEL', members, job)
      redis.call('HDEL', turns, job)
      redis.call('SADD', reserved, job)
      redis.call('SADD', reserving, worker)
      return job
    end
  end
end
return false
"""


class FairQueue:
    """The per-owner lines of one GPU queue's queued jobs, and the take that picks the next one."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.redis = client
        self.queue = queue
        self._enqueue = client.register_script(_ENQUEUE)
        self._take = client.register_script(_TAKE)

    def _keys(self, priority: Priority) -> dict[str, str]:
        names = {"queue": self.queue, "priority": priority.value}
        return {
            "owners": FAIR_OWNERS_KEY.format(**names),
            "clock": FAIR_CLOCK_KEY.format(**names),
            "served": FAIR_SERVED_KEY.format(**names),
        }

    def _line(self, priority: Priority, owner: str) -> str:
        return FAIR_OWNER_JOBS_KEY.format(queue=self.queue, priority=Priority(priority).value, owner=owner)

    def stage_enqueue(
        self,
        pipe: redis.client.Pipeline,
        owner: str,
        priority: Priority,
        job_ids: list[str],
        *,
        front: bool = False,
        turns: Mapping[str, int] | None = None,
    ) -> None:
        """Queue, in the caller's transaction, these jobs (one owner, one priority) at the end of the owner's line,
        or at its front (`front`: jobs handed back, which go again before the owner's later ones). `turns`: how many
        turns a job's take spends (its rows in the batch, `n`), 1 for a job it leaves out."""
        if not job_ids:
            return
        spends = turns or {}
        priority = Priority(priority)  # a string that names no priority is a ValueError, not a line of its own
        keys = self._keys(priority)
        self._enqueue(
            keys=[
                self._line(priority, owner),
                keys["owners"],
                keys["clock"],
                keys["served"],
                FAIR_MEMBERS_KEY.format(queue=self.queue),
                FAIR_SEQUENCE_KEY.format(queue=self.queue),
                FAIR_TURNS_KEY.format(queue=self.queue),
            ],
            args=[
                owner,
                priority.value,
                "1" if front else "0",
                *(part for job_id in job_ids for part in (job_id, max(1, spends.get(job_id, 1)))),
            ],
            client=pipe,
        )

    def stage_dequeue(self, pipe: redis.client.Pipeline, owner: str, priority: Priority, job_ids: list[str]) -> None:
        """Take these jobs out of their owner's line in the caller's transaction (they left `queued`); an owner
        whose line empties leaves the turns at its next take."""
        if job_ids:
            pipe.zrem(self._line(priority, owner), *job_ids)
            pipe.hdel(FAIR_MEMBERS_KEY.format(queue=self.queue), *job_ids)
            pipe.hdel(FAIR_TURNS_KEY.format(queue=self.queue), *job_ids)

    def take(self, worker: str) -> str | None:
        """The next job by priority and owner's turn, moved from its line to `worker`'s reservations in one
        script (so a worker that dies now leaves it to the reconciler); None when no job waits."""
        keys = [
            FAIR_MEMBERS_KEY.format(queue=self.queue),
            WORKER_RESERVED_KEY.format(name=worker),
            RESERVING_WORKERS_KEY,
            FAIR_TURNS_KEY.format(queue=self.queue),
        ]
        prefixes = []
        for priority in PRIORITY_ORDER:
            keys.extend(self._keys(priority).values())
            prefixes.append(self._line(priority, ""))
        return self._take(keys=keys, args=[worker, *prefixes]) or None

    def waiting_priorities(self, job_ids: list[str]) -> dict[str, Priority]:
        """Which of these jobs wait in a line here, with their priority."""
        if not job_ids:
            return {}
        found = self.redis.hmget(FAIR_MEMBERS_KEY.format(queue=self.queue), job_ids)
        return {
            job_id: Priority(priority) for job_id, priority in zip(job_ids, found, strict=True) if priority is not None
        }

    def holds(self, client: redis.Redis | redis.client.Pipeline, job_id: str) -> bool:
        """Whether this job waits in a line (read through `client`, e.g. a watching pipeline)."""
        return bool(client.hexists(FAIR_MEMBERS_KEY.format(queue=self.queue), job_id))

    def waiting_count(self) -> int:
        """Jobs waiting in the lines, all priorities and owners together."""
        return int(self.redis.hlen(FAIR_MEMBERS_KEY.format(queue=self.queue)))
