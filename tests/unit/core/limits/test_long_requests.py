"""The per-process bound on long-lived requests: past it, ServerBusy at once; a place is given back however the
block ends."""

from __future__ import annotations

import pytest

from core.errors import ServerBusy
from core.limits.long_requests import BUSY_RETRY_AFTER_S, LongRequests


def test_past_the_limit_a_request_is_refused_and_a_place_comes_back_when_one_ends():
    places = LongRequests(2)
    with places.held(), places.held():
        with pytest.raises(ServerBusy) as refused, places.held():
            pass
        assert refused.value.retry_after_s == BUSY_RETRY_AFTER_S
    with places.held():
        pass


def test_a_block_that_raises_gives_its_place_back():
    places = LongRequests(1)
    with pytest.raises(RuntimeError), places.held():
        raise RuntimeError
    with places.held():
        pass
