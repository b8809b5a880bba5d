"""What a message says and where it waits: the task name and the priority steps of the GPU queue."""

from __future__ import annotations

from core.jobs.priority import Priority

GENERATE_TASK_NAME = "llm.generate"
# kombu emulates priorities on Redis with one list per step, and takes from the lowest number first.
PRIORITY_STEPS = {Priority.HIGH: 0, Priority.NORMAL: 3, Priority.LOW: 6, Priority.BATCH: 9}


def priority_step(priority: Priority) -> int:
    """The kombu priority step of a job's priority; a string that names no priority is a ValueError."""
    return PRIORITY_STEPS[Priority(priority)]


# Each GPU worker also reads a queue of its own, where it sends itself canaries (worker/consumer_canary.py).
CANARY_TASK_NAME = "llm.canary"


def canary_queue_name(gpu_queue: str, worker_token: str) -> str:
    """The canary queue of the worker process identified by `worker_token` (unique per process)."""
    return f"{gpu_queue}.canary.{worker_token}"
