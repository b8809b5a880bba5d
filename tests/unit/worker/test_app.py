"""The GPU worker's Celery app: its tasks, its pool for the batch size, the queues it reads."""

from __future__ import annotations

import pytest

from broker.names import CANARY_TASK_NAME, GENERATE_TASK_NAME
from worker.app import GpuWorker, create_worker_app, worker_argv


def test_a_batching_worker_runs_a_thread_per_place_and_one_waiting_for_each(make_settings, request):
    app = create_worker_app(make_settings(max_batch_size=4, gpu_queue=f"unit-{request.node.name}"))
    assert GENERATE_TASK_NAME in app.tasks and CANARY_TASK_NAME in app.tasks
    assert app.conf.worker_pool == "threads" and app.conf.worker_concurrency == 8
    names = list(app.amqp.queues.consume_from)
    assert names[1] == f"unit-{request.node.name}" and ".canary." in names[0]


def test_a_one_place_worker_runs_the_solo_pool(make_settings):
    app = create_worker_app(make_settings(max_batch_size=1))
    assert app.conf.worker_pool == "solo" and app.conf.worker_concurrency == 1


def test_a_task_before_the_model_is_loaded_is_refused(make_settings):
    settings = make_settings()
    worker = GpuWorker(settings, create_worker_app(settings), None)
    with pytest.raises(RuntimeError, match="not loaded"):
        worker.run("a" * 32)


def test_the_worker_command_line_names_its_host():
    argv = worker_argv("gpu0@%h")
    assert argv[0] == "worker" and argv[argv.index("--hostname") + 1] == "gpu0@%h"
