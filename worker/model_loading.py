"""Finding the model on disk, choosing the device and dtype, and loading it once."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings

log = logging.getLogger("llm.worker")

DEMO_MODEL_MARKER = "DEMO_MODEL.txt"


class ModelNotFound(Exception):
    """MODEL_DIR holds neither the `fp16/` + `tokenizer/` layout nor a Hugging Face model folder."""


@dataclass(frozen=True)
class ModelPaths:
    weights_dir: Path
    tokenizer_dir: Path
    name: str
    is_demo: bool


def locate_model(model_dir: Path) -> ModelPaths:
    """The `fp16/` + `tokenizer/` layout or a plain Hugging Face folder."""
    model_dir = model_dir.resolve()
    fp16_weights = model_dir / "fp16"
    if (fp16_weights / "config.json").is_file():
        weights = fp16_weights
        tokenizer = model_dir / "tokenizer" if (model_dir / "tokenizer").is_dir() else fp16_weights
    elif (model_dir / "config.json").is_file():
        weights = tokenizer = model_dir
    else:
        raise ModelNotFound(
            f"no model in {model_dir}: expected fp16/config.json (+ tokenizer/) or config.json; "
            "run `make demo-model` (`llmq-demo-model --out model`) for a small demo model"
        )
    return ModelPaths(weights, tokenizer, model_dir.name, (model_dir / DEMO_MODEL_MARKER).is_file())


@dataclass(frozen=True)
class DeviceChoice:
    torch_device: str  # what torch is told: "cpu" or "cuda:N" as this process sees it
    cuda_index: int | None
    physical_gpu_index: int | None  # for pynvml, which ignores CUDA_VISIBLE_DEVICES


def pin_visible_gpu(device_setting: str) -> None:
    """For DEVICE=cuda:N, make GPU N the only one this process sees, before CUDA starts.

    Respects a CUDA_VISIBLE_DEVICES that is already set (docker, a supervisor).
    """
    if device_setting.startswith("cuda:") and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = device_setting.split(":", 1)[1]


def choose_device(device_setting: str) -> DeviceChoice:
    """Resolve DEVICE (auto|cpu|cuda|cuda:N) against what torch can see."""
    import torch

    if device_setting == "cpu" or (device_setting == "auto" and not torch.cuda.is_available()):
        return DeviceChoice("cpu", None, None)
    if not torch.cuda.is_available():
        raise RuntimeError(f"DEVICE={device_setting} but torch sees no CUDA device")
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    pinned_by_us = device_setting.startswith("cuda:") and visible == [device_setting.split(":", 1)[1]]
    index = 0 if pinned_by_us or ":" not in device_setting else int(device_setting.split(":", 1)[1])
    physical = int(visible[index]) if index < len(visible) and visible[index].isdigit() else index
    return DeviceChoice(f"cuda:{index}", index, physical)


def choose_dtype(dtype_setting: str, device: DeviceChoice) -> Any:
    """DTYPE=auto means float16 on a GPU (the model's FP16 weights) and float32 on the CPU."""
    import torch

    if dtype_setting == "auto":
        return torch.float16 if device.cuda_index is not None else torch.float32
    return getattr(torch, dtype_setting)


def gpu_name(device: DeviceChoice) -> str:
    """The GPU's marketing name via NVML, else torch's; `none` without a GPU."""
    if device.cuda_index is None:
        return "none"
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(device.physical_gpu_index or 0))
            return name.decode() if isinstance(name, bytes) else name
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML missing or refused: the name is cosmetic, never fatal
        import torch

        return torch.cuda.get_device_name(device.cuda_index)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    paths: ModelPaths
    device: DeviceChoice
    dtype_name: str
    load_seconds: float


def load_model(settings: Settings, device: DeviceChoice) -> LoadedModel:
    """Load tokenizer and weights once; safetensors go straight to the chosen device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    paths = locate_model(settings.model_dir)
    dtype = choose_dtype(settings.dtype, device)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        paths.weights_dir, dtype=dtype, device_map=device.torch_device, local_files_only=True
    )
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    load_seconds = time.perf_counter() - started
    log.info("loaded %s on %s as %s in %.2f s", paths.weights_dir, device.torch_device, dtype, load_seconds)
    return LoadedModel(model, tokenizer, paths, device, str(dtype).removeprefix("torch."), load_seconds)
