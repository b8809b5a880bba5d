"""The engine variant the ENGINE_* settings name, resolved for this (CPU) machine."""

from __future__ import annotations

import pytest

from tests.unit.worker.conftest import cpu_settings
from worker.engine_variant import EngineVariantUnavailable, q_padding_for, resolve_engine_variant


def test_auto_on_the_cpu_is_sdpa_with_nothing_padded(loaded_model, demo_model_dir, tmp_path):
    variant = resolve_engine_variant(cpu_settings(demo_model_dir, tmp_path), "cpu", loaded_model.model)
    assert variant.attention == "sdpa" and not variant.cuda_graphs and not variant.pads_shapes
    assert variant.batching_config_values() == {"default_compile_level": 0}
    assert "attention sdpa, CUDA graphs off" in variant.describe()


def test_compile_pads_shapes_and_graphs_are_said_off(loaded_model, demo_model_dir, tmp_path):
    settings = cpu_settings(demo_model_dir, tmp_path, engine_compile_level=1, engine_cuda_graphs="off")
    values = resolve_engine_variant(settings, "cpu", loaded_model.model).batching_config_values()
    assert values["use_cuda_graph"] is False and values["q_padding_interval_size"] == q_padding_for(4)


@pytest.mark.parametrize(
    "overrides",
    [{"engine_cuda_graphs": "on"}, {"engine_attention": "torch_flash"}, {"engine_attention": "flash_attention_2"}],
)
def test_a_variant_this_machine_cannot_run_is_refused(loaded_model, demo_model_dir, tmp_path, overrides):
    with pytest.raises(EngineVariantUnavailable):
        resolve_engine_variant(cpu_settings(demo_model_dir, tmp_path, **overrides), "cpu", loaded_model.model)


def test_q_padding_is_a_power_of_two_within_bounds():
    assert [q_padding_for(n) for n in (1, 8, 9, 32, 1000)] == [8, 8, 16, 32, 64]
