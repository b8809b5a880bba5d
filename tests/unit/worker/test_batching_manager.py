"""The continuous-batching manager's configuration: KV-cache size, the CPU budget, what transformers resolved."""

from __future__ import annotations

from worker.batching_manager import (
    CPU_MAX_BATCH_TOKENS,
    PAGE_SIZE_TOKENS,
    captured_graphs,
    kv_cache_blocks,
    kv_cache_bytes_per_token,
    resolved_variant,
)


def test_kv_cache_size_follows_the_models_shape(loaded_model):
    model = loaded_model.model
    config = model.config
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_token = 2 * config.num_hidden_layers * kv_heads * head_dim * 4
    assert kv_cache_bytes_per_token(model) == per_token
    assert kv_cache_blocks(model, 1 << 30) == (1 << 30) // (per_token * PAGE_SIZE_TOKENS)
    assert kv_cache_blocks(model, 1) == 16


def test_on_the_cpu_the_cache_is_fixed_and_bounded_by_the_batch(batching_engine):
    values = batching_engine._factory.batching_config_values
    assert values["max_batch_tokens"] == CPU_MAX_BATCH_TOKENS and values["max_requests_per_batch"] == 4
    assert values["num_blocks"] <= 4 * -(-batching_engine.encoder.context_tokens // PAGE_SIZE_TOKENS)


def test_the_running_manager_reports_its_variant_and_no_graphs(batching_engine):
    assert "resolved by transformers" in resolved_variant(batching_engine.manager)
    assert captured_graphs(batching_engine.manager) == 0
