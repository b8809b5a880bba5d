"""The GPU queue's priority steps (broker/names.py): one per priority, and no fallback for an unknown one."""

from __future__ import annotations

import pytest

from broker.names import PRIORITY_STEPS, priority_step
from core.jobs.priority import Priority


def test_every_priority_has_its_step_and_earlier_priorities_come_first():
    assert list(PRIORITY_STEPS) == list(Priority)
    assert [priority_step(priority) for priority in Priority] == [0, 3, 6, 9]
    assert priority_step("low") == 6  # a stored or published string reads as its priority


def test_an_unknown_priority_has_no_step():
    with pytest.raises(ValueError):
        priority_step("urgent")
