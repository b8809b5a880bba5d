"""Engine variants (ENGINE_* settings): each one the CPU can run keeps the engine's behaviours; the others refuse.

Every variant is built by the worker's own code (load_model, then BatchingEngine with its ManagerFactory). PyTorch's
flash kernel has no CPU implementation, so the torch_flash variant runs here with a reference kernel of the same
contract in its place (tests/reference_flash_kernel.py): everything around it (registration, the manager's packed
batches without a mask, the paged cache's gathered K/V) is the real path.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

import worker.torch_flash_attention as torch_flash
from core.jobs.model import GenerationInput
from core.settings import Settings
from tests.reference_flash_kernel import reference_varlen_flash
from worker.batching_engine import BatchingEngine
from worker.engine_variant import EngineVariantUnavailable, resolve_engine_variant
from worker.generation import PromptEncoder, context_tokens, eos_token_ids
from worker.model_loading import choose_device, load_model
from worker.startup import build_runtime

GREEDY = {"prompt": "Thời tiết hôm nay ở Hà Nội", "max_tokens": 12, "do_sample": False}
# Each runnable variant, as the ENGINE_* settings name it.
CPU_VARIANTS = {
    "sdpa": {"engine_attention": "sdpa"},
    "torch_flash": {"engine_attention": "torch_flash"},
    "sdpa-compile-1": {"engine_attention": "sdpa", "engine_compile_level": 1},
}


def engine_settings(model_dir: Path, tmp_path: Path, **overrides) -> Settings:
    return Settings(_env_file=None, model_dir=model_dir, log_dir=tmp_path, device="cpu", max_batch_size=8, **overrides)


def plain_greedy_text(loaded, encoder, eos_ids: list[int], params: GenerationInput) -> str:
    """What one plain `generate` (SDPA, no batching) answers: the reference every variant must reproduce."""
    input_ids = torch.tensor([encoder.encode(params)])
    with torch.inference_mode():
        output = loaded.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=params.max_tokens,
            do_sample=False,
            eos_token_id=eos_ids,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
    return loaded.tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)


@pytest.fixture(scope="module", params=list(CPU_VARIANTS))
def variant_engine(request, demo_model_dir: Path, tmp_path_factory):
    """A batching engine of one variant, with the plain-generate greedy text computed before it took the model."""
    settings = engine_settings(demo_model_dir, tmp_path_factory.mktemp("logs"), **CPU_VARIANTS[request.param])
    loaded = load_model(settings, choose_device("cpu"))
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "torch_flash":
            # The kernel stays replaced while this engine runs; the CPU refusal only while it is built.
            patch.setattr(torch_flash, "varlen_flash", reference_varlen_flash)
        # Computed before the engine sets its attention on the model: the reference is plain SDPA.
        eos_ids = eos_token_ids(loaded.model, loaded.tokenizer)
        encoder = PromptEncoder(loaded.tokenizer, context_tokens(loaded.model))
        reference = plain_greedy_text(loaded, encoder, eos_ids, GenerationInput(**GREEDY))
        with pytest.MonkeyPatch.context() as build_patch:
            if request.param == "torch_flash":
                build_patch.setattr(torch_flash, "flash_kernel_problem", lambda *_: None)
            engine = BatchingEngine(loaded, settings)
        try:
            yield engine, reference
        finally:
            engine.shutdown()


def run_together(engine: BatchingEngine, bodies: list[dict], **kwargs) -> list:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: engine.generate(GenerationInput(**body), **kwargs), bodies))


def test_each_variant_logs_what_it_runs(variant_engine, caplog) -> None:
    engine, _ = variant_engine
    variant = engine._factory.variant
    assert variant.attention in ("sdpa", "torch_flash")
    assert not variant.cuda_graphs  # no graphs on the CPU
    assert engine._factory.warmup_s is not None
    if variant.compile_level:
        assert engine.manager.continuous_batching_config.varlen_compile_config is not None
        assert variant.kv_padding_tokens > 0 and variant.q_padding_tokens > 0


def test_jobs_join_and_leave_and_greedy_matches_plain_generate(variant_engine) -> None:
    engine, reference = variant_engine
    long = {"prompt": "Một bài thơ dài", "max_tokens": 40, "temperature": 1.3, "top_p": 0.95, "ignore_eos": True}
    short = {"prompt": "Ngắn thôi", "max_tokens": 3, "ignore_eos": True}
    long_job, greedy, short_job = run_together(engine, [long, GREEDY, short])
    assert short_job.completion_tokens == 3 and short_job.finish_reason == "length"
    assert long_job.completion_tokens == 40
    assert max(long_job.batch_size, greedy.batch_size, short_job.batch_size) > 1
    assert greedy.text == reference


def test_per_job_sampling_inside_a_batch(variant_engine) -> None:
    engine, reference = variant_engine
    top_k_one = GREEDY | {"do_sample": True, "temperature": 1.5, "top_k": 1}
    hot = {"prompt": GREEDY["prompt"], "max_tokens": 12, "temperature": 1.5, "top_p": 1.0, "ignore_eos": True}
    pinned, first_hot, second_hot = run_together(engine, [top_k_one, hot, hot])
    assert pinned.text == reference  # top_k=1 leaves one candidate whatever the temperature
    assert first_hot.text != reference or second_hot.text != reference


def test_stop_string_ends_only_its_job(variant_engine) -> None:
    engine, _ = variant_engine
    probe = {"prompt": "The weather in Hanoi", "max_tokens": 24, "do_sample": False, "ignore_eos": True}
    text = engine.generate(GenerationInput(**probe)).text
    stop = next(text[i : i + 3] for i in range(4, len(text) - 3) if text[i : i + 3].strip())
    stopped, untouched = run_together(engine, [probe | {"stop": [stop]}, probe])
    assert stopped.finish_reason == "stop" and stopped.text == text[: text.index(stop)]
    assert untouched.text == text and untouched.finish_reason == "length"


def test_seeded_job_runs_in_the_sequential_lane_beside_the_batch(variant_engine) -> None:
    engine, _ = variant_engine
    seeded = {"prompt": "Hà Nội", "max_tokens": 10, "temperature": 1.0, "top_p": 1.0, "seed": 7, "ignore_eos": True}
    alone = engine.generate(GenerationInput(**seeded))
    together = run_together(engine, [seeded, {"prompt": "khác", "max_tokens": 30, "ignore_eos": True}])
    assert together[0].text == alone.text and together[0].completion_tokens == 10


def test_cancel_ends_a_running_job(variant_engine) -> None:
    engine, _ = variant_engine
    seen = threading.Event()
    body = {"prompt": "Kể chuyện", "max_tokens": 400, "ignore_eos": True, "temperature": 0.7}
    result = engine.generate(GenerationInput(**body), should_cancel=seen.is_set, on_tokens=lambda _tokens: seen.set())
    assert result.finish_reason == "canceled"
    assert 0 < result.completion_tokens < 400


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"engine_attention": "torch_flash"}, "CUDA only"),
        ({"engine_attention": "flash_attention_2"}, "no such flash-attention package"),
        ({"engine_cuda_graphs": "on"}, "CUDA graphs need a CUDA device"),
    ],
)
def test_a_variant_the_cpu_cannot_run_stops_the_worker_at_start(overrides, says, demo_model_dir, tmp_path) -> None:
    settings = engine_settings(demo_model_dir, tmp_path, **overrides)
    # Not the sequential engine in its place: the worker's start-up lets the refusal through, and the worker exits.
    with pytest.raises(EngineVariantUnavailable, match=says):
        build_runtime(settings, worker_name="variant-test", republish=lambda *_: None)


def test_auto_on_the_cpu_is_the_engine_as_it_was(demo_model_dir, tmp_path) -> None:
    settings = engine_settings(demo_model_dir, tmp_path)
    loaded = load_model(settings, choose_device("cpu"))
    variant = resolve_engine_variant(settings, "cpu", loaded.model)
    assert (variant.attention, variant.cuda_graphs, variant.compile_level) == ("sdpa", False, 0)
    assert variant.batching_config_values() == {"default_compile_level": 0}  # graphs and padding left to transformers


def test_graphs_off_with_padding_is_refused_in_the_settings(tmp_path) -> None:
    with pytest.raises(ValidationError, match="pad shapes for CUDA graphs or compile only"):
        Settings(_env_file=None, engine_cuda_graphs="off", engine_kv_padding_tokens=512)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, engine_compile_level=4)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, engine_attention="flash")
