"""Per-owner limits at submit: `priority: high` only for the listed keys (anyone on an open service), and a cap on
the jobs one owner has queued."""

from __future__ import annotations

import pytest

from core.errors import Forbidden, TooManyRequests
from core.limits.submit_limits import OwnerLimits
from core.owners.ids import owner_id_for_key


def test_on_an_open_service_anyone_may_ask_for_high(make_settings, store):
    OwnerLimits(make_settings(api_keys=[]), store).check_priority("high", "anonymous")


def test_with_keys_only_the_listed_ones_may_ask_for_high(make_settings, store):
    limits = OwnerLimits(make_settings(api_keys=["a", "b"], high_priority_keys=["a"]), store)
    limits.check_priority("high", owner_id_for_key("a"))
    limits.check_priority("normal", owner_id_for_key("b"))
    with pytest.raises(Forbidden) as refused:
        limits.check_priority("high", owner_id_for_key("b"))
    assert refused.value.field == "priority"


def test_the_queued_cap_counts_what_is_queued_and_what_is_added(make_settings, store, new_job):
    limits = OwnerLimits(make_settings(max_queued_per_key=3), store)
    new_job()
    new_job()
    limits.check_queued("owner-a", 1)
    with pytest.raises(TooManyRequests, match="has 2 jobs queued; 2 more") as refused:
        limits.check_queued("owner-a", 2)
    assert refused.value.retry_after_s == 10
    limits.check_queued("owner-b", 3)
