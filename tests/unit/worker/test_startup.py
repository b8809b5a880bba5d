"""Building a worker's runtime: the model loaded once, the engine its settings ask for, the store and logs."""

from __future__ import annotations

from tests.unit.worker.conftest import cpu_settings
from worker.sequential_engine import SequentialEngine
from worker.startup import build_runtime


def test_one_place_builds_the_sequential_engine_and_a_wrapper_wraps_it(demo_model_dir, own_redis, tmp_path):
    settings = cpu_settings(demo_model_dir, tmp_path, redis_url=own_redis.url, max_batch_size=1)
    wrapped = []

    def wrap(engine):
        wrapped.append(engine)
        return engine

    runtime = build_runtime(settings, worker_name="gpu@unit", republish=lambda *_: None, wrap_engine=wrap)
    assert isinstance(runtime.engine, SequentialEngine) and wrapped == [runtime.engine]
    assert runtime.worker_name == "gpu@unit" and runtime.model_name == demo_model_dir.resolve().name
    assert runtime.dtype_name == "float32" and runtime.sampler.gpu_name == "none"
    assert runtime.store.ping() and runtime.job_log.path == settings.log_dir / "jobs.jsonl"
    assert runtime.publisher is not None and runtime.running.count() == 0
