"""The worker in-process: the tiny demo model loaded once on the CPU, engines built on it, a runtime around them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from core.jobs.store import JobStore, connect
from core.settings import Settings
from worker.model_loading import LoadedModel, choose_device, load_model


def cpu_settings(model_dir: Path, tmp: Path, **overrides) -> Settings:
    """Settings for an engine on the CPU over the demo model."""
    values = {"model_dir": model_dir, "log_dir": tmp / "logs", "device": "cpu", "max_batch_size": 4}
    return Settings(_env_file=None, **(values | overrides))


def save_tiny_model(model_dir: Path, tokenizer, config_class, model_class, **config) -> Path:
    """A randomly initialised model of another family than the demo's, as small as it goes, saved with `tokenizer`
    in the service's layout (tokenizer/, fp16/): a model the service has never seen."""
    tokenizer.save_pretrained(model_dir / "tokenizer")
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    model_config = config_class(
        vocab_size=len(tokenizer),
        num_key_value_heads=1,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **(shape | config),
    )
    model_class(model_config).to(torch.float16).save_pretrained(model_dir / "fp16")
    return model_dir


@pytest.fixture(scope="session")
def loaded_model(demo_model_dir: Path) -> LoadedModel:
    """The demo model, loaded once for every worker test."""
    settings = Settings(_env_file=None, model_dir=demo_model_dir, device="cpu")
    return load_model(settings, choose_device("cpu"))


@pytest.fixture(scope="module")
def batching_engine(loaded_model, demo_model_dir, tmp_path_factory) -> Iterator:
    """A batching engine of four places, shared by a test module and shut down after it."""
    from worker.batching_engine import BatchingEngine

    engine = BatchingEngine(loaded_model, cpu_settings(demo_model_dir, tmp_path_factory.mktemp("engine")))
    yield engine
    engine.shutdown()


@pytest.fixture
def bare_manager(loaded_model):
    """A continuous-batching manager with per-request processors, built and never started (to inspect its list)."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    return loaded_model.model.init_continuous_batching(
        generation_config=GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, top_k=50, max_new_tokens=4),
        continuous_batching_config=ContinuousBatchingConfig(per_request_processors=True, num_blocks=16),
    )


@pytest.fixture
def own_store(own_redis) -> JobStore:
    """A job store over a Redis of the test's own: `take_next` sees only the test's jobs."""
    return JobStore(connect(own_redis.url), job_ttl_s=3600, queue="unit-gpu")


@pytest.fixture
def quiet_logger() -> logging.Logger:
    logger = logging.getLogger("tests.unit.worker.resources")
    logger.propagate = False
    return logger


Republished = list[tuple[str, str]]
RepublishFn = Callable[[str, str], None]
