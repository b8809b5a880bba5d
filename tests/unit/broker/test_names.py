"""Task names and the priority steps of the GPU queue."""

from __future__ import annotations

from broker.names import CANARY_TASK_NAME, GENERATE_TASK_NAME, canary_queue_name, priority_step


def test_interactive_work_is_taken_before_low_and_batch_work():
    steps = [priority_step(priority) for priority in ("high", "normal", "low", "batch")]
    assert steps == sorted(steps) and len(set(steps)) == 4 and steps[0] == 0


def test_task_and_canary_queue_names():
    assert GENERATE_TASK_NAME == "llm.generate" and CANARY_TASK_NAME == "llm.canary"
    assert canary_queue_name("gpu", "ab12") == "gpu.canary.ab12"
