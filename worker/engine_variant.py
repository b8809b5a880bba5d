"""Which batching engine runs: attention, CUDA graphs and compile, from the ENGINE_* settings and this machine.

Every variant goes through the same worker code (worker/batching_manager.py starts the one manager with it); only
the values given to transformers' `ContinuousBatchingConfig` and the model's attention differ. `auto` everywhere is
the engine as it was before these settings: a flash-attention package on a GPU when one is installed, else SDPA, and
CUDA graphs and compile as transformers decides for that attention. An explicit variant this machine can't run is
refused at start (EngineVariantUnavailable) rather than replaced: a sweep, or an operator comparing two settings,
must never measure another engine than the one named.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings

# The sum of the batch's cached tokens is padded to this for graphs and compile (for SDPA it is also the width of the
# float mask, and every padded token is gathered from the cache in every layer). Four pages of 256: a 32-job batch of
# 128-token jobs crosses about 5 buckets, each captured once, and a step reads at most ~1k padded tokens per layer,
# where transformers' own default (16,384) would gather 16k for a single job.
DECODE_KV_PADDING_TOKENS = 1024
# A decode step's query tokens are the batch's jobs: one bucket covers every decode step of a full batch.
MAX_Q_PADDING_TOKENS = 64
MIN_Q_PADDING_TOKENS = 8


class EngineVariantUnavailable(Exception):
    """The ENGINE_* settings name a variant this machine can't run; the message says why and what to set."""


@dataclass(frozen=True)
class EngineVariant:
    attention: str  # sdpa | torch_flash | flash_attention_2 | flash_attention_3
    cuda_graphs: bool  # whether transformers captures graphs (on a GPU only)
    compile_level: int  # transformers' default_compile_level, 0-3
    q_padding_tokens: int  # 0 when nothing pads shapes
    kv_padding_tokens: int
    graphs_left_to_transformers: bool  # ENGINE_CUDA_GRAPHS=auto with nothing padded: today's engine, as it was

    @property
    def pads_shapes(self) -> bool:
        """Graphs and compile need static (padded) shapes; plain eager steps don't."""
        return self.cuda_graphs or self.compile_level > 0

    def batching_config_values(self) -> dict:
        """The `ContinuousBatchingConfig` fields this variant sets (the rest are the worker's)."""
        values: dict = {"default_compile_level": self.compile_level}
        if self.pads_shapes:
            # Non-zero intervals make transformers force graphs on: say explicitly whether they are wanted.
            values |= {
                "use_cuda_graph": self.cuda_graphs,
                "q_padding_interval_size": self.q_padding_tokens,
                "kv_padding_interval_size": self.kv_padding_tokens,
            }
        elif not self.graphs_left_to_transformers:
            values["use_cuda_graph"] = False
        return values

    def describe(self) -> str:
        """One line for the worker's start-up log and the sweep's table."""
        padding = f", padding q {self.q_padding_tokens} kv {self.kv_padding_tokens}" if self.pads_shapes else ""
        graphs = "on" if self.cuda_graphs else "off"
        return f"attention {self.attention}, CUDA graphs {graphs}, compile level {self.compile_level}{padding}"


def q_padding_for(max_batch_size: int) -> int:
    """The smallest power of two that holds a full batch's decode step, within [8, 64]."""
    size = MIN_Q_PADDING_TOKENS
    while size < min(max_batch_size, MAX_Q_PADDING_TOKENS):
        size *= 2
    return size


def installed_flash_package(device: str) -> str | None:
    """The flash-attention package transformers can use here (FA3, then FA2), if one is installed."""
    if not device.startswith("cuda"):
        return None
    from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

    if is_flash_attn_3_available():
        return "flash_attention_3"
    if is_flash_attn_2_available():
        return "flash_attention_2"
    return None


def _attention(settings: Settings, device: str, model) -> str:
    choice = settings.engine_attention
    if choice == "auto":
        # Chosen here, not left to the manager, so the choice is logged and never tries a download.
        return installed_flash_package(device) or "sdpa"
    if choice == "torch_flash":
        from worker.torch_flash_attention import flash_kernel_problem

        problem = flash_kernel_problem(device, model.dtype, model.config.get_text_config())
        if problem:
            raise EngineVariantUnavailable(f"ENGINE_ATTENTION=torch_flash: {problem}")
    elif choice.startswith("flash_attention_"):
        installed = installed_flash_package(device)
        wanted = {"flash_attention_2": ("flash_attention_2", "flash_attention_3"), "flash_attention_3": (choice,)}
        if installed not in wanted[choice]:
            raise EngineVariantUnavailable(
                f"ENGINE_ATTENTION={choice}: no such flash-attention package is installed for {device}"
            )
        return choice
    return choice


def resolve_engine_variant(settings: Settings, device: str, model) -> EngineVariant:
    """The variant the ENGINE_* settings name, checked against this device and model; raises if it can't run."""
    attention = _attention(settings, device, model)
    on_gpu = device.startswith("cuda")
    if settings.engine_cuda_graphs == "on" and not on_gpu:
        raise EngineVariantUnavailable(
            f"ENGINE_CUDA_GRAPHS=on: CUDA graphs need a CUDA device, this worker runs on {device}"
        )
    if settings.engine_cuda_graphs == "auto":
        # transformers' own rule: graphs when no attention mask is needed, i.e. for a flash attention, on a GPU.
        graphs = on_gpu and attention != "sdpa"
    else:
        graphs = settings.engine_cuda_graphs == "on"
    pads = graphs or settings.engine_compile_level > 0
    return EngineVariant(
        attention=attention,
        cuda_graphs=graphs,
        compile_level=settings.engine_compile_level,
        q_padding_tokens=(settings.engine_q_padding_tokens or q_padding_for(settings.max_batch_size)) if pads else 0,
        kv_padding_tokens=(settings.engine_kv_padding_tokens or DECODE_KV_PADDING_TOKENS) if pads else 0,
        graphs_left_to_transformers=settings.engine_cuda_graphs == "auto" and not pads,
    )
