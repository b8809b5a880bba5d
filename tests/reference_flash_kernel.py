"""A CPU stand-in for PyTorch's CUDA-only flash kernel, so the torch_flash wiring runs through the real engine here.

Same contract as `worker.torch_flash_attention.varlen_flash`: packed [tokens, heads, head_dim] sequences given by
cumulative offsets, grouped-query heads, causal aligned to the bottom right; computed one sequence at a time with SDPA.
"""

from __future__ import annotations

import torch


def reference_varlen_flash(query, key, value, cu_seq_q, cu_seq_k, max_q: int, max_k: int, scale: float | None):
    """Attention of each packed sequence over its own keys; rows past the last offset (padding) stay zero."""
    out = torch.zeros_like(query)
    groups = query.shape[1] // key.shape[1]
    for index in range(len(cu_seq_q) - 1):
        q_start, q_end = int(cu_seq_q[index]), int(cu_seq_q[index + 1])
        k_start, k_end = int(cu_seq_k[index]), int(cu_seq_k[index + 1])
        if q_end == q_start:
            continue
        q = query[q_start:q_end].transpose(0, 1)
        k, v = (x[k_start:k_end].repeat_interleave(groups, dim=1).transpose(0, 1) for x in (key, value))
        q_len, k_len = q_end - q_start, k_end - k_start
        # Bottom-right causal: query i sees the keys up to its own position at the end of the sequence.
        visible = torch.arange(k_len)[None, :] <= torch.arange(q_len)[:, None] + (k_len - q_len)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=scale)
        out[q_start:q_end] = attended.transpose(0, 1)
    return out
