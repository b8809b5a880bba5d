"""Celery options shared by the publishers (the API, the ops worker) and the GPU worker.

What depends on the settings (broker URL, queue, visibility timeout) is set by `apply_settings`. This module
imports nothing of this project: broker/app.py builds every Celery app from it and adds the queue's priority steps.
"""

# Messages carry only a job id; JSON keeps them readable and safe.
task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"

# The job store is the source of truth, so Celery keeps no results.
task_ignore_result = True
result_backend = None

# Late acks + prefetch 1: a job taken by a worker that dies is delivered again;
# a worker never hoards jobs.
task_acks_late = True
worker_prefetch_multiplier = 1
task_reject_on_worker_lost = True

task_default_queue = "gpu"

broker_transport_options = {
    # Publishing must fail fast, not hang, when Redis is away.
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
    "max_retries": 1,
    # Priorities are emulated with one Redis list per step (broker/names.py names the steps).
    "queue_order_strategy": "priority",
}

broker_connection_retry_on_startup = True
broker_connection_max_retries = None
task_publish_retry = False

worker_hijack_root_logger = False
worker_send_task_events = False
worker_enable_remote_control = False


def apply_settings(app, settings) -> None:
    """Configure a Celery app of this project from this module and the settings object."""
    app.config_from_object(__name__)
    app.conf.broker_url = settings.effective_redis_url
    app.conf.task_default_queue = settings.gpu_queue
    # A message unacked for longer than this is delivered again: it must exceed the longest job
    # (the settings refuse a job deadline that does not fit) and be set in all three places, in every process.
    timeout_s = settings.broker_visibility_timeout_seconds
    app.conf.broker_transport_options = dict(broker_transport_options, visibility_timeout=timeout_s)
    app.conf.result_backend_transport_options = {"visibility_timeout": timeout_s}
    app.conf.visibility_timeout = timeout_s
