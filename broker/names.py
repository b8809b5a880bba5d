"""What a message says and where it waits: the task name and the priority steps of the GPU queue."""

from __future__ import annotations

GENERATE_TASK_NAME = "llm.generate"
# kombu emulates priorities on Redis with one list per step, and takes from the lowest number first.
PRIORITY_STEPS = {"high": 0, "normal": 3, "low": 6, "batch": 9}


def priority_step(priority: str) -> int:
    """The kombu priority step of a job's priority (an unknown one counts as normal)."""
    return PRIORITY_STEPS.get(priority, PRIORITY_STEPS["normal"])


# Each GPU worker also reads a queue of its own, where it sends itself canaries (worker/consumer_canary.py).
CANARY_TASK_NAME = "llm.canary"


def canary_queue_name(gpu_queue: str, worker_token: str) -> str:
    """The canary queue of the worker process identified by `worker_token` (unique per process)."""
    return f"{gpu_queue}.canary.{worker_token}"
