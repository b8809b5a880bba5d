"""MAX_STREAMS_PER_KEY: open event streams per owner, each slot held as long as a stream may last."""

from __future__ import annotations

import pytest

from core.errors import TooManyRequests
from core.limits.owner_slots import SLOT_MARGIN_S
from core.limits.stream_slots import StreamSlots
from core.redis.keys import STREAM_SLOTS_KEY


def test_a_second_stream_past_a_limit_of_one_is_refused_naming_the_setting(client):
    streams = StreamSlots(client, limit=1, max_stream_s=30)
    assert streams.hold_s == 30 + SLOT_MARGIN_S
    with streams.held("owner-a"):
        assert client.zcard(STREAM_SLOTS_KEY.format(owner="owner-a")) == 1
        with pytest.raises(TooManyRequests, match="MAX_STREAMS_PER_KEY"), streams.held("owner-a"):
            pass
