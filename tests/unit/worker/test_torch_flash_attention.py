"""PyTorch's flash kernel as an attention: refused where it can't run; outside the manager it is SDPA."""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from worker.torch_flash_attention import (
    TORCH_FLASH,
    flash_kernel_problem,
    torch_flash_attention_forward,
    use_torch_flash,
)


def test_the_cpu_and_float32_are_refused_with_a_reason(loaded_model):
    config = loaded_model.model.config
    assert "CUDA only" in flash_kernel_problem("cpu", torch.float16, config)
    assert "FP16 or BF16" in flash_kernel_problem("cuda:0", torch.float32, config)


def test_outside_the_manager_it_computes_what_sdpa_computes(loaded_model):
    layer = loaded_model.model.model.layers[0].self_attn
    query, key, value = (torch.randn(1, 2, 5, 8) for _ in range(3))
    ours, _ = torch_flash_attention_forward(layer, query, key, value, None)
    expected, _ = sdpa_attention_forward(layer, query, key, value, None)
    assert torch.allclose(ours, expected)


def test_the_model_is_switched_to_the_registered_attention(loaded_model):
    config = loaded_model.model.config
    before = config._attn_implementation_internal
    try:
        use_torch_flash(loaded_model.model)
        use_torch_flash(loaded_model.model)
        assert TORCH_FLASH in AttentionInterface._global_mapping and config._attn_implementation == TORCH_FLASH
    finally:  # the session's model goes back to what the other tests load
        for each in (config, config.get_text_config()):
            each._attn_implementation_internal = before
