"""PyTorch's own flash-attention kernel as an attention of transformers' continuous-batching manager.

PyTorch ships FlashAttention 2 as `torch.ops.aten._flash_attention_forward` (what
`torch.nn.attention.varlen.varlen_attn` calls; the op is in 2.11, the lent GPU box's version, and in 2.13): sequences
packed one after the other and given by cumulative lengths, grouped-query heads read natively (no K/V repeated per
query head), and a causal mask aligned to the bottom right, so a query shorter than its keys (a decode step, a prefill
chunk after a cached one) sees every cached key before it. Its paged `block_table` argument is refused with the
built-in FA2 kernel (it needs the external FA3 package activated, PyTorch PR #175924), so this runs on the manager's
varlen path: the paged cache gathers each layer's K/V for the batch, and no float mask is built.

The registered name contains "flash" because transformers' manager decides on that word that no mask is needed and
that the attention may run continuous batching. It names no package, so it is set on the config directly
(`set_attn_implementation` would try to import a flash package of that name). transformers finds no FA2/FA3 in it
and so turns its fast decode path (`flash_attn_with_kvcache`) off.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

TORCH_FLASH = "torch_flash_varlen"


def flash_kernel_problem(device: str, dtype: torch.dtype, text_config) -> str | None:
    """Why PyTorch's flash kernel can't run this model here, or None when it can."""
    if not device.startswith("cuda"):
        return "PyTorch's flash kernel runs on CUDA only (torch has no CPU kernel for it)"
    if dtype not in (torch.float16, torch.bfloat16):
        return f"PyTorch's flash kernel needs FP16 or BF16 weights, not {dtype} (set DTYPE)"
    if not torch.backends.cuda.is_flash_attention_available():
        return f"this torch build ({torch.__version__}) has no flash-attention kernel"
    if getattr(text_config, "sliding_window", None):
        return "the model has sliding-window layers, which this wrapper does not pass to the kernel"
    return None


def varlen_flash(query, key, value, cu_seq_q, cu_seq_k, max_q: int, max_k: int, scale: float | None):
    """Packed [tokens, heads, head_dim] in, the same shape out; causal, bottom-right aligned."""
    # dropout 0, causal, no debug mask; only arguments the op has had since torch 2.1, so 2.11 and 2.13 both take it.
    return torch.ops.aten._flash_attention_forward(
        query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, 0.0, True, False, scale=scale
    )[0]


def torch_flash_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,  # [1, query heads, query tokens, head_dim]
    key: torch.Tensor,  # [1, KV heads, key tokens, head_dim], gathered from the paged cache
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    **_kwargs,
) -> tuple[torch.Tensor, None]:
    """One layer's attention over the manager's packed batch; returns [1, query tokens, query heads, head_dim].

    Outside the manager (the sequential lane's plain `generate` on the same model: one sequence, no padding, so no
    mask) it is SDPA, as that lane always was.
    """
    if cu_seq_lens_q is None or cu_seq_lens_k is None:
        if attention_mask is not None:
            raise ValueError(f"{TORCH_FLASH} takes padded batches only inside the batching manager")
        return sdpa_attention_forward(module, query, key, value, None, dropout=dropout, scaling=scaling, **_kwargs)
    packed = [x.squeeze(0).transpose(0, 1) for x in (query, key, value)]  # [tokens, heads, head_dim]
    # The op reads int32 offsets and non-strided last dimensions.
    q, k, v = (x.contiguous() for x in packed)
    out = varlen_flash(
        q, k, v, cu_seq_lens_q.to(torch.int32), cu_seq_lens_k.to(torch.int32), max_length_q, max_length_k, scaling
    )
    return out.unsqueeze(0), None


def use_torch_flash(model) -> None:
    """Register the attention once and make `model` use it (every layer reads the config at each forward)."""
    if TORCH_FLASH not in AttentionInterface._global_mapping:
        AttentionInterface.register(TORCH_FLASH, torch_flash_attention_forward)
        # The manager passes no mask for a flash attention; the masking code still looks the name up.
        ALL_MASK_ATTENTION_FUNCTIONS.register(TORCH_FLASH, ALL_MASK_ATTENTION_FUNCTIONS["flash_attention_2"])
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        config._attn_implementation_internal = TORCH_FLASH
