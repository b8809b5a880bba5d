"""Building a worker's runtime: the model loaded once, the engine its settings ask for, the store and logs."""

from __future__ import annotations

from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM

from tests.unit.worker.conftest import cpu_settings, save_tiny_model
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


def test_a_model_the_batch_cant_run_is_served_one_job_at_a_time_and_says_so(demo_model_dir, own_redis, tmp_path):
    """Gemma 2's attention has no form the continuous-batching manager runs here: the worker serves it one job at a
    time, and announces a batch of 1 (what /readyz and llm_worker_max_batch_size show), not MAX_BATCH_SIZE."""
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir / "tokenizer")
    model_dir = save_tiny_model(tmp_path / "gemma2", tokenizer, Gemma2Config, Gemma2ForCausalLM, head_dim=16)
    settings = cpu_settings(model_dir, tmp_path / "logs", redis_url=own_redis.url, max_batch_size=4)
    runtime = build_runtime(settings, worker_name="gpu@unit", republish=lambda *_: None)
    assert isinstance(runtime.engine, SequentialEngine) and runtime.batch_size == 1
