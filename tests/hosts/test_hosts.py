"""The short version of `make test-hosts` in `make test`: scenario 1 (the Redis master's host dies) on test hosts
in network namespaces. Needs root and `ip netns`, as CI has; elsewhere it is skipped and says why."""

from __future__ import annotations

import pytest

from tests.hosts.network import unavailable_reason
from tests.hosts.scenarios import master_host_dies
from tests.hosts.service import ServiceHosts

_REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def test_the_redis_master_host_dies_and_nothing_accepted_is_lost(demo_model_dir, tmp_path):
    with ServiceHosts(tmp_path, demo_model_dir) as hosts:
        outcome = master_host_dies(hosts, before_s=3, down_s=8, after_s=20)
    print(outcome.report())
    assert not outcome.violations, outcome.report()
