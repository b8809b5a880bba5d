"""Building transformers' continuous-batching manager for this model and machine: its variant, KV-cache size, start."""

from __future__ import annotations

import gc
import logging
import time

import torch
from transformers import GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig

from core.settings import Settings
from worker import logprobs, request_rules
from worker.engine_variant import EngineVariant, resolve_engine_variant
from worker.logprobs import LogprobsCapture
from worker.request_rules import RequestRulesProcessor
from worker.torch_flash_attention import use_torch_flash

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


class ManagerFactory:
    """Makes (and after an out-of-memory, remakes) the one manager of a worker, always configured the same way."""

    def __init__(self, model, tokenizer, settings: Settings, *, eos_token_ids: list[int], context_tokens: int | None):
        self.model = model
        self.device = str(model.device)
        # Resolved first: a variant this machine can't run refuses the engine before anything is built.
        self.variant: EngineVariant = resolve_engine_variant(settings, self.device, model)
        self.warmup_s: float | None = None
        # Per-request rules run Python on every step: only where steps run eagerly (see worker/request_rules.py).
        self.with_request_rules = not self.variant.pads_shapes
        self.request_rules: RequestRulesProcessor | None = None
        # Logprobs are captured per request under the same condition (eager steps); elsewhere such jobs go sequential.
        self.logprobs_capture: LogprobsCapture | None = None
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
            **self.variant.batching_config_values(),
        )
        if self.with_request_rules:
            # Async batching prepares a step before the previous token is known: rules would see stale tokens.
            self.batching_config_values["use_async_batching"] = False

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
        """A warmed-up, running manager; logs its variant as transformers resolved it, warm-up time and KV cache."""
        self._use_attention(self.variant.attention)
        started = time.perf_counter()
        manager = self.model.init_continuous_batching(
            generation_config=self.generation_config,
            continuous_batching_config=ContinuousBatchingConfig(**self.batching_config_values),
        )
        if self.with_request_rules:
            # Before warmup, which sizes the processors' argument storage.
            self.request_rules = request_rules.install(manager)
            # Inserted after the rules, so it comes first: it sees the raw logits.
            self.logprobs_capture = logprobs.install(manager)
        # Graph capture and compilation of the largest shapes happen here; smaller shapes are captured on first use.
        manager.warmup()
        self.warmup_s = time.perf_counter() - started
        with torch.inference_mode():
            manager.start()
        log.info("batching engine variant: %s; %s", self.variant.describe(), resolved_variant(manager))
        if self.request_rules is not None and not runs_eagerly(manager):
            # transformers resolved graphs, compile or async batching after all: the rules can't run in the batch.
            log.warning("batching engine: per-request logits rules run in the sequential lane (steps are not eager)")
            self.request_rules = None
            self.logprobs_capture = None
        log.info(
            "batching engine: per-request logits rules (penalties, min_tokens) run %s",
            "in the batch" if self.request_rules is not None else "in the sequential lane",
        )
        log.info("batching engine warm-up (graph capture, compilation) %.2f s", self.warmup_s)
        self._log_cache_size(manager)
        return manager

    def _use_attention(self, attention: str) -> None:
        if attention == "torch_flash":
            use_torch_flash(self.model)
        elif self.model.config._attn_implementation != attention:
            self.model.set_attn_implementation(attention)

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


def resolved_variant(manager) -> str:
    """What transformers made of the variant: graphs per path, async batching, compiled paths, fast decode path."""
    config = manager.continuous_batching_config
    varlen_graphs, decode_graphs = config.cuda_graph_booleans
    compiled = config.varlen_compile_config is not None or config.decode_compile_config is not None
    # transformers fills in padding sizes even when nothing pads: show them only where graphs or compile use them.
    padding = (
        f", padding q {config.q_padding_interval_size} kv {config.kv_padding_interval_size}"
        if varlen_graphs or decode_graphs or compiled
        else ", no padding"
    )
    return (
        f"resolved by transformers: CUDA graphs varlen {varlen_graphs} decode {decode_graphs}, "
        f"async batching {config.use_async_batching}, "
        f"compiled varlen {config.varlen_compile_config is not None} "
        f"decode {config.decode_compile_config is not None}, "
        f"fast decode path {bool(config.max_blocks_per_request)}{padding}"
    )


def runs_eagerly(manager) -> bool:
    """Each step runs its Python as written: no CUDA graphs, no compiled paths, no step prepared ahead."""
    config = manager.continuous_batching_config
    compiled = config.varlen_compile_config is not None or config.decode_compile_config is not None
    return not any(config.cuda_graph_booleans) and not compiled and not config.use_async_batching


def captured_graphs(manager) -> int:
    """CUDA graphs the manager holds so far (0 without graphs); each was captured once, on first use of its shape."""
    io = getattr(manager.batch_processor, "inputs_and_outputs", None)
    pairs = [pair.device_io for pair in getattr(io, "io_pairs", [])] or [io]
    return sum(len(getattr(getattr(each, "graphs", None), "_storage", {})) for each in pairs if each is not None)
