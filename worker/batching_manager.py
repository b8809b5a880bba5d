"""Building transformers' continuous-batching manager for this model and machine: attention, KV-cache size, start."""

from __future__ import annotations

import gc
import logging

import torch
from transformers import GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig

from core.settings import Settings

log = logging.getLogger("llm.worker")

# KV-cache page size in tokens; 256 is transformers' default.
PAGE_SIZE_TOKENS = 256
# Tokens one forward step may carry on the CPU (longer prompts are prefilled in chunks).
CPU_MAX_BATCH_TOKENS = 2048


def kv_cache_bytes_per_token(model) -> int:
    """Bytes one token's keys and values take across all layers, for this model's shape and dtype."""
    config = model.config.get_text_config()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * model.dtype.itemsize


def kv_cache_blocks(model, cache_budget_bytes: int) -> int:
    """How many KV-cache pages of PAGE_SIZE_TOKENS fit into a byte budget, for this model's shape."""
    return max(16, cache_budget_bytes // (kv_cache_bytes_per_token(model) * PAGE_SIZE_TOKENS))


def fastest_attention(device: str) -> str:
    """The attention the batching manager runs fastest with here: a flash-attention kernel if one is installed.

    Only with flash attention does transformers' manager use CUDA graphs and its fast decode path; SDPA is the
    portable fallback. Chosen here, not left to the manager, so the choice is logged and never tries a download.
    """
    if device.startswith("cuda"):
        from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

        if is_flash_attn_3_available():
            return "flash_attention_3"
        if is_flash_attn_2_available():
            return "flash_attention_2"
    return "sdpa"


class ManagerFactory:
    """Makes (and after an out-of-memory, remakes) the one manager of a worker, always configured the same way."""

    def __init__(self, model, tokenizer, settings: Settings, *, eos_token_ids: list[int], context_tokens: int | None):
        self.model = model
        self.device = str(model.device)
        # Non-default temperature/top_p/top_k make transformers build the per-request processors; each job then
        # passes its own values. do_sample is manager-wide, so greedy jobs sample with top_k=1 (same tokens).
        self.generation_config = GenerationConfig(
            do_sample=True,
            temperature=0.7,
            top_p=0.9,
            top_k=50,
            max_new_tokens=settings.max_tokens_limit,
            eos_token_id=eos_token_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
        self.batching_config_values = dict(
            per_request_processors=True,
            auto_switch_to_flash=False,
            max_requests_per_batch=settings.max_batch_size,
            page_size=PAGE_SIZE_TOKENS,
            **self._memory_budget(settings, context_tokens),
        )

    def _memory_budget(self, settings: Settings, context_tokens: int | None) -> dict:
        if self.device.startswith("cuda"):
            return {"max_memory_percent": settings.kv_cache_memory_percent}
        # On the CPU the default budget is most of the RAM: give the cache a fixed size instead.
        # Tokens per forward step bound the activations; blocks are capped at what the batch can ever use.
        blocks_per_request = -(-context_tokens // PAGE_SIZE_TOKENS) if context_tokens else 64
        return {
            "num_blocks": min(
                kv_cache_blocks(self.model, int(settings.kv_cache_cpu_gb * 2**30)),
                settings.max_batch_size * blocks_per_request,
            ),
            "max_batch_tokens": CPU_MAX_BATCH_TOKENS,
        }

    def start(self):
        """A warmed-up, running manager; logs its attention and KV-cache size."""
        attention = fastest_attention(self.device)
        if self.model.config._attn_implementation != attention:
            self.model.set_attn_implementation(attention)
        manager = self.model.init_continuous_batching(
            generation_config=self.generation_config,
            continuous_batching_config=ContinuousBatchingConfig(**self.batching_config_values),
        )
        manager.warmup()
        with torch.inference_mode():
            manager.start()
        self._log_cache_size(manager)
        return manager

    def restart(self, manager):
        """A fresh manager after the old one's loop died of a recoverable error (out of memory).

        The old cache is freed first: on a GPU it holds most of the free memory, and the new one is sized from
        what is free.
        """
        manager.stop(block=True, timeout=10, hard_stop=True)
        manager.batch_processor = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        with torch.inference_mode():
            manager.start()
        return manager

    def _log_cache_size(self, manager) -> None:
        cache = getattr(manager.batch_processor, "cache", None)
        blocks = getattr(cache, "num_blocks", None)
        if blocks is None:
            return
        cache_gb = blocks * PAGE_SIZE_TOKENS * kv_cache_bytes_per_token(self.model) / 2**30
        log.info(
            "batching engine: attention %s, KV cache %d blocks of %d tokens (%.2f GB, %d tokens)",
            self.model.config._attn_implementation,
            blocks,
            PAGE_SIZE_TOKENS,
            cache_gb,
            blocks * PAGE_SIZE_TOKENS,
        )
