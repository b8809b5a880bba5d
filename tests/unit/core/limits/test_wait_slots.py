"""MAX_WAITS_PER_KEY: synchronous waits per owner, each slot held as long as a wait may last."""

from __future__ import annotations

import pytest

from core.errors import TooManyRequests
from core.limits.owner_slots import SLOT_MARGIN_S
from core.limits.wait_slots import WaitSlots
from core.redis.keys import WAIT_SLOTS_KEY


def test_a_second_wait_past_a_limit_of_one_is_refused_naming_the_setting(client):
    waits = WaitSlots(client, limit=1, wait_s=10)
    assert waits.hold_s == 10 + SLOT_MARGIN_S
    with waits.held("owner-a"):
        assert client.zcard(WAIT_SLOTS_KEY.format(owner="owner-a")) == 1
        with pytest.raises(TooManyRequests, match="MAX_WAITS_PER_KEY"), waits.held("owner-a"):
            pass
    assert client.zcard(WAIT_SLOTS_KEY.format(owner="owner-a")) == 0
