"""Continuous batching: many jobs share the one model; each joins the running batch and leaves when done.

Built on transformers' continuous-batching manager. What it cannot honour per request (`seed`,
`repetition_penalty`) goes to the sequential engine instead, so no parameter is ever silently ignored.
Stop strings are honoured in the batch: such requests stream, and are cancelled as soon as a stop appears.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig
from transformers.generation.continuous_batching.requests import RequestStatus

from core.jobs import GenerationInput
from core.settings import Settings
from worker.generation import (
    EngineDead,
    EngineFailed,
    GenerationResult,
    PromptEncoder,
    context_tokens,
    cut_at_first_stop,
    eos_token_ids,
    finish_reason_of,
)
from worker.model_loading import LoadedModel
from worker.sequential_engine import SequentialEngine

log = logging.getLogger("llm.worker")

CANCEL_POLL_S = 0.05
# KV-cache page size in tokens; 256 is transformers' default.
PAGE_SIZE_TOKENS = 256
# Tokens one forward step may carry on the CPU (longer prompts are prefilled in chunks).
CPU_MAX_BATCH_TOKENS = 2048


def needs_sequential_path(params: GenerationInput) -> bool:
    """Parameters the batch can't apply per request: a private RNG seed, a repetition penalty."""
    return params.seed is not None or params.repetition_penalty is not None


@dataclass
class _Pending:
    """One job's request inside the batch, as the dispatcher thread sees it."""

    prompt_len: int
    stops: list[str]
    submitted_at: float
    should_cancel: Callable[[], bool] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    finished_at: float | None = None
    stop_hit: bool = False
    canceled: bool = False
    error: str | None = None
    engine_died: bool = False
    batch_size: int = 1


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


class BatchingEngine:
    """Owns the continuous-batching manager and one dispatcher thread that routes its outputs to jobs."""

    def __init__(self, loaded: LoadedModel, settings: Settings) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device.torch_device
        self.encoder = PromptEncoder(self.tokenizer, context_tokens(self.model))
        self.eos_token_ids = eos_token_ids(self.model, self.tokenizer)
        self.vocab_size = self.model.config.get_text_config().vocab_size
        self.sequential = SequentialEngine(loaded)
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.manager = self._start_manager(settings)
        self._dispatcher = threading.Thread(target=self._dispatch_outputs, name="cb-dispatcher", daemon=True)
        self._dispatcher.start()
        # One thread asks every job whether to stop, rather than each job's thread waking up to ask.
        self._canceller = threading.Thread(target=self._watch_for_cancels, name="cb-cancels", daemon=True)
        self._canceller.start()

    def _start_manager(self, settings: Settings):
        # Non-default temperature/top_p/top_k make transformers build the per-request processors; each job then
        # passes its own values. do_sample is manager-wide, so greedy jobs sample with top_k=1 (same tokens).
        generation_config = GenerationConfig(
            do_sample=True,
            temperature=0.7,
            top_p=0.9,
            top_k=50,
            max_new_tokens=settings.max_tokens_limit,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if self.device.startswith("cuda"):
            memory = {"max_memory_percent": settings.kv_cache_memory_percent}
        else:
            # On the CPU the default budget is most of the RAM: give the cache a fixed size instead.
            # Tokens per forward step bound the activations; blocks are capped at what the batch can ever use.
            blocks_per_request = (
                -(-self.encoder.context_tokens // PAGE_SIZE_TOKENS) if self.encoder.context_tokens else 64
            )
            memory = {
                "num_blocks": min(
                    kv_cache_blocks(self.model, int(settings.kv_cache_cpu_gb * 2**30)),
                    settings.max_batch_size * blocks_per_request,
                ),
                "max_batch_tokens": CPU_MAX_BATCH_TOKENS,
            }
        attention = fastest_attention(self.device)
        if self.model.config._attn_implementation != attention:
            self.model.set_attn_implementation(attention)
        batching_config = ContinuousBatchingConfig(
            per_request_processors=True,
            auto_switch_to_flash=False,
            max_requests_per_batch=settings.max_batch_size,
            page_size=PAGE_SIZE_TOKENS,
            **memory,
        )
        manager = self.model.init_continuous_batching(
            generation_config=generation_config, continuous_batching_config=batching_config
        )
        manager.warmup()
        with torch.inference_mode():
            manager.start()
        self._log_cache_size(manager)
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

    def shutdown(self) -> None:
        """Stop the manager's generation thread (it is not a daemon: a worker would hang at exit without this)."""
        self._stopping.set()
        self.manager.stop(block=True, timeout=10, hard_stop=True)
        self._fail_all("the engine shut down", engine_died=False)

    def release_cached_memory(self) -> None:
        """Empty the CUDA cache, but only when no job is in the batch (it would only slow them down)."""
        with self._lock:
            idle = not self._pending
        if idle:
            self.sequential.release_cached_memory()

    def _sampling_kwargs(self, params: GenerationInput) -> dict:
        if params.is_greedy:
            return {"temperature": 1.0, "top_p": 1.0, "top_k": 1}
        return {
            "temperature": float(params.temperature),
            "top_p": float(params.top_p),
            "top_k": int(min(params.top_k or self.vocab_size, self.vocab_size)),
        }

    def generate(self, params: GenerationInput, should_cancel: Callable[[], bool] | None = None) -> GenerationResult:
        """Run one job inside the shared batch (or on the sequential path when it must); blocks until done."""
        if needs_sequential_path(params):
            return self.sequential.generate(params, should_cancel)
        prompt_ids = self.encoder.encode(params)
        if not self.manager.is_running():
            raise EngineDead("the batching engine's generation thread is not running")
        request_id = uuid.uuid4().hex
        pending = _Pending(len(prompt_ids), params.stop or [], time.perf_counter(), should_cancel)
        with self._lock:
            self._pending[request_id] = pending
            self._note_batch_size()
        self.manager.add_request(
            prompt_ids,
            request_id=request_id,
            max_new_tokens=params.max_tokens,
            # Streaming costs a decode per token: only for jobs that must watch their text or be cancelable.
            streaming=bool(pending.stops) or should_cancel is not None,
            record_timestamps=True,
            eos_token_id=-1 if params.ignore_eos else self.eos_token_ids,
            **self._sampling_kwargs(params),
        )
        pending.done.wait()
        if pending.engine_died:
            raise EngineDead(pending.error or "the batching engine stopped")
        if pending.error is not None:
            raise EngineFailed(pending.error)
        return self._result(pending)

    def _result(self, pending: _Pending) -> GenerationResult:
        text = self.tokenizer.decode(pending.tokens, skip_special_tokens=True)
        if pending.stop_hit:
            text = cut_at_first_stop(text, pending.stops)
        finished_at = pending.finished_at or time.perf_counter()
        return GenerationResult(
            text=text,
            finish_reason=finish_reason_of(
                pending.tokens, self.eos_token_ids, stop_hit=pending.stop_hit, canceled=pending.canceled
            ),
            prompt_tokens=pending.prompt_len,
            completion_tokens=len(pending.tokens),
            time_to_first_token_s=(
                pending.first_token_at - pending.submitted_at if pending.first_token_at is not None else None
            ),
            generation_s=finished_at - pending.submitted_at,
            batch_size=pending.batch_size,
        )

    def _note_batch_size(self) -> None:
        """Each job remembers the most jobs it shared the batch with (call under the lock)."""
        active = len(self._pending)
        for pending in self._pending.values():
            pending.batch_size = max(pending.batch_size, active)

    def _finish(
        self, request_id: str, *, canceled: bool = False, error: str | None = None, engine_died: bool = False
    ) -> None:
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is None:
            return
        pending.canceled = pending.canceled or canceled
        pending.error = error
        pending.engine_died = engine_died
        pending.finished_at = time.perf_counter()
        pending.done.set()

    def _fail_all(self, reason: str, *, engine_died: bool) -> None:
        with self._lock:
            request_ids = list(self._pending)
        for request_id in request_ids:
            self._finish(request_id, error=reason, engine_died=engine_died)

    def _dispatch_outputs(self) -> None:
        """The only reader of the manager's output queue (get_result by id would shuffle others' outputs)."""
        while not self._stopping.is_set():
            output = self.manager.get_result(timeout=0.1)
            if output is None:
                if not self.manager.is_running() and not self._stopping.is_set():
                    # Its jobs make the worker exit (see classify_failure): the reconciler requeues them.
                    log.error("the continuous-batching thread died")
                    self._fail_all("the batching engine stopped unexpectedly", engine_died=True)
                    return
                continue
            with self._lock:
                pending = self._pending.get(output.request_id)
            if pending is None:
                continue  # canceled or stopped earlier: late outputs are dropped
            pending.tokens = list(output.generated_tokens)
            if output.timestamps and pending.first_token_at is None:
                pending.first_token_at = output.timestamps[0]
            if output.status == RequestStatus.FAILED:
                self._finish(output.request_id, error=output.error or "generation failed")
            elif output.is_finished():
                # A stop string may arrive with the last token, before any streamed check saw it.
                pending.stop_hit = bool(pending.stops) and self._stop_string_seen(pending)
                self._finish(output.request_id)
            elif pending.stops and self._stop_string_seen(pending):
                pending.stop_hit = True
                self._finish(output.request_id)
                self.manager.cancel_request(output.request_id)

    def _watch_for_cancels(self) -> None:
        while not self._stopping.wait(CANCEL_POLL_S):
            with self._lock:
                watched = [(rid, p.should_cancel) for rid, p in self._pending.items() if p.should_cancel is not None]
            for request_id, should_cancel in watched:
                if should_cancel():
                    self._finish(request_id, canceled=True)
                    self.manager.cancel_request(request_id)

    def _stop_string_seen(self, pending: _Pending) -> bool:
        text = self.tokenizer.decode(pending.tokens, skip_special_tokens=True)
        return any(stop in text for stop in pending.stops)
