"""Celery options shared by the API (which only publishes) and the workers.

The broker URL is not here: it comes from the settings object (REDIS_URL) when each Celery app is built.
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
task_routes = {"llm.generate": {"queue": "gpu"}}

# A message unacked for longer than this is delivered again (celery#7651): it must exceed the longest job
# and be set in all three places, in every process.
VISIBILITY_TIMEOUT_S = 3600
broker_transport_options = {
    "visibility_timeout": VISIBILITY_TIMEOUT_S,
    # Publishing must fail fast, not hang, when Redis is away (celery#4296).
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
    "max_retries": 1,
    # Priorities are emulated with one Redis list per step; api/publisher.py names the steps it uses.
    "priority_steps": [0, 3, 6, 9],
    "queue_order_strategy": "priority",
}
result_backend_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
visibility_timeout = VISIBILITY_TIMEOUT_S

broker_connection_retry_on_startup = True
broker_connection_max_retries = None
task_publish_retry = False

worker_hijack_root_logger = False
worker_send_task_events = False
worker_enable_remote_control = False
