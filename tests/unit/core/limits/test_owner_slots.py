"""Per-owner slots in Redis shared by every API process: past the limit TooManyRequests, a slot given back when its
block ends, a slot left by a dead process lapsing on its own, and the process's own bound checked first."""

from __future__ import annotations

import time

import pytest

from core.errors import ServerBusy, TooManyRequests
from core.limits.long_requests import LongRequests
from core.limits.owner_slots import OwnerSlots


def slots(client, *, limit: int = 2, hold_s: float = 60, process: LongRequests | None = None) -> OwnerSlots:
    return OwnerSlots(client, key="test:slots:{owner}", limit=limit, hold_s=hold_s, refusal="too many",
                      process=process)  # fmt: skip


def test_past_the_limit_the_owner_is_refused_and_others_are_not(client):
    bound = slots(client)
    with bound.held("owner-a"), bound.held("owner-a"):
        assert bound.in_flight("owner-a") == 2
        with pytest.raises(TooManyRequests, match="too many"), bound.held("owner-a"):
            pass
        with bound.held("owner-b"):
            pass
    assert bound.in_flight("owner-a") == 0


def test_a_slot_never_given_back_lapses_after_its_hold(client):
    bound = slots(client, limit=1, hold_s=0.2)
    held = bound.held("owner-a")
    held.__enter__()  # its process died: the block never ends
    with pytest.raises(TooManyRequests), bound.held("owner-a"):
        pass
    time.sleep(0.25)
    with bound.held("owner-a"):
        pass


def test_the_processs_bound_is_checked_before_redis(client):
    bound = slots(client, process=LongRequests(0))
    with pytest.raises(ServerBusy), bound.held("owner-a"):
        pass
    assert bound.in_flight("owner-a") == 0
