"""Fair turns between owners, in-process against a real Redis: the order in which workers take queued jobs."""

from __future__ import annotations

from itertools import pairwise

import pytest

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from core.jobs.store import JobStore, connect
from core.redis.keys import FAIR_TURNS_KEY, WORKER_RESERVED_KEY

WORKER = "gpu@test#1"


@pytest.fixture
def store(redis_server, request) -> JobStore:
    """A store on a GPU queue of the test's own: no worker of the session takes from its lines."""
    return JobStore(connect(redis_server.url), job_ttl_s=3600, queue=f"fair-{request.node.name}")


def queue_jobs(store: JobStore, owner: str, count: int, priority: str = "normal", choices: int = 1) -> list[str]:
    ids = []
    for _ in range(count):
        job = Job(
            id=new_job_id(),
            status=JobStatus.QUEUED,
            created_at=utc_now_iso(),
            input={"prompt": "x", "n": choices},
            owner=owner,
            priority=priority,
        )
        store.create(job)
        ids.append(job.id)
    return ids


def turns_key(store: JobStore) -> str:
    return FAIR_TURNS_KEY.format(queue=store.fair.queue)


def take_all(store: JobStore, limit: int = 10_000) -> list[str]:
    taken = []
    while len(taken) < limit and (job_id := store.take_next(WORKER)) is not None:
        taken.append(job_id)
    return taken


def test_a_key_with_one_job_is_served_next_to_a_key_with_a_long_backlog(store):
    backlog = queue_jobs(store, "owner-a", 200)
    mine = queue_jobs(store, "owner-b", 3)
    order = take_all(store)
    assert sorted(order) == sorted(backlog + mine)  # every job once
    # The owners alternate while both have jobs: b's three are among the first six taken.
    assert set(mine) <= set(order[:6])
    # Each owner's jobs come in the order they were queued.
    assert [job_id for job_id in order if job_id in set(backlog)] == backlog
    assert [job_id for job_id in order if job_id in set(mine)] == mine


def test_three_owners_take_turns(store):
    jobs = {owner: queue_jobs(store, owner, 4) for owner in ("a", "b", "c")}
    owner_of = {job_id: owner for owner, ids in jobs.items() for job_id in ids}
    order = [owner_of[job_id] for job_id in take_all(store)]
    for round_start in range(0, 12, 3):
        assert sorted(order[round_start : round_start + 3]) == ["a", "b", "c"]


def test_a_key_that_queues_one_job_at_a_time_gets_no_more_turns_than_the_others(store):
    queue_jobs(store, "steady-1", 20)
    queue_jobs(store, "steady-2", 20)
    pending: list[str] = []
    order = []
    for _ in range(30):
        if not store.fair.waiting_priorities(pending):
            pending = queue_jobs(store, "trickle", 1)  # one more as soon as its last one was taken
        order.append(store.get(store.take_next(WORKER)).owner)
    # Three owners with work: the one that trickles gets its third, not every other place.
    assert order.count("trickle") <= 11
    assert order.count("steady-1") >= 9 and order.count("steady-2") >= 9


def test_a_job_with_n_choices_spends_n_turns(store):
    """n choices take n rows of the batch: the key that asks for them waits as long as n single jobs would."""
    many = queue_jobs(store, "many", 3, choices=4)
    single = queue_jobs(store, "single", 12)
    order = take_all(store)
    assert sorted(order) == sorted(many + single)
    # Between two of `many`'s jobs, `single` gets four places (its four rows' worth), not one.
    positions = [order.index(job_id) for job_id in many]
    assert [later - earlier for earlier, later in pairwise(positions)] == [5, 5]
    assert store.redis.hlen(turns_key(store)) == 0  # a taken job leaves no turns behind


def test_a_key_that_comes_back_after_an_n_choice_job_waits_out_its_turns(store):
    queue_jobs(store, "other", 10)
    (wide,) = queue_jobs(store, "wide", 1, choices=6)
    order = take_all(store, limit=2)
    assert wide in order  # its turn came, and its line emptied
    (later,) = queue_jobs(store, "wide", 1)
    rest = take_all(store)
    # It rejoins six turns on (the five the other key was owed, and a tie that goes by key name), not at once.
    assert rest.index(later) == 6


def test_a_canceled_or_handed_back_n_choice_job_keeps_no_stale_turns(store):
    kept, canceled = queue_jobs(store, "a", 2, choices=3)
    assert store.cancel_queued([canceled]) == 1
    assert store.redis.hget(turns_key(store), canceled) is None
    assert store.take_next(WORKER) == kept
    assert [job.id for job in store.put_back([kept], WORKER)] == [kept]
    assert store.redis.hget(turns_key(store), kept) == "3"  # back in line, still three rows' worth
    assert take_all(store) == [kept]


def test_every_higher_priority_job_is_taken_before_any_lower_one(store):
    batch = queue_jobs(store, "a", 3, priority="batch")
    low = queue_jobs(store, "b", 2, priority="low")
    normal = queue_jobs(store, "a", 2)
    high = queue_jobs(store, "c", 1, priority="high")
    assert take_all(store) == high + normal + low + batch


def test_a_taken_job_is_reserved_for_its_worker_until_it_runs(store):
    (job_id,) = queue_jobs(store, "a", 1)
    assert store.take_next(WORKER) == job_id
    assert store.redis.sismember(WORKER_RESERVED_KEY.format(name=WORKER), job_id)
    assert store.take_next(WORKER) is None  # it left the line

    def mark_started(job: Job) -> None:
        job.worker = WORKER
        job.attempts += 1

    store.transition(job_id, JobStatus.RUNNING, mark_started)
    # The running index speaks for it from now on.
    assert not store.redis.sismember(WORKER_RESERVED_KEY.format(name=WORKER), job_id)


def test_a_job_put_back_goes_before_its_owners_later_jobs(store):
    first, second, third = queue_jobs(store, "a", 3)
    assert store.take_next(WORKER) == first
    assert [job.id for job in store.put_back([first], WORKER)] == [first]
    assert not store.redis.sismember(WORKER_RESERVED_KEY.format(name=WORKER), first)
    assert take_all(store) == [first, second, third]


def test_a_job_already_back_in_line_is_not_put_back_twice(store):
    (job_id,) = queue_jobs(store, "a", 1)
    assert store.put_back([job_id]) == []  # it never left its line
    assert take_all(store) == [job_id]


def test_a_canceled_job_leaves_its_line(store):
    kept, canceled = queue_jobs(store, "a", 2)
    assert store.cancel_queued([canceled]) == 1
    assert take_all(store) == [kept]
    assert store.fair.waiting_count() == 0


def test_a_job_handed_back_by_its_worker_is_in_line_again_at_the_front(store):
    first, second = queue_jobs(store, "a", 2)
    assert store.take_next(WORKER) == first

    def mark_started(job: Job) -> None:
        job.worker = WORKER
        job.attempts += 1

    store.transition(first, JobStatus.RUNNING, mark_started)
    store.transition(first, JobStatus.QUEUED, attempt=1)  # its worker stopped: handed back
    assert take_all(store) == [first, second]
