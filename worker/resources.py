"""Resource samples (RAM, VRAM) and the seed's resource-log line, to stdout and a rotating file."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import psutil

GIB = 1024**3
RESOURCE_LOGGER_NAME = "llm.resources"
RESOURCE_LOG_FILE = "resources.log"

_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")
# cgroup v1 reports "no limit" as a huge page-aligned number.
_NO_LIMIT_BYTES = 1 << 60


@dataclass(frozen=True)
class ResourceSample:
    """One reading, in the units the seed's log line shows."""

    gpu: str
    vram_allocated_gb: float
    vram_reserved_gb: float
    ram_used_gb: float
    ram_total_gb: float
    ram_percent: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def ram_used_and_total_bytes() -> tuple[int, int]:
    """Container memory use and limit (cgroup v2, then v1), else the host's, as `docker stats` counts."""
    host_total = psutil.virtual_memory().total
    for usage_file, limit_file, stat_file, inactive_key in (
        (
            _CGROUP_V2 / "memory.current",
            _CGROUP_V2 / "memory.max",
            _CGROUP_V2 / "memory.stat",
            "inactive_file",
        ),
        (
            _CGROUP_V1 / "memory.usage_in_bytes",
            _CGROUP_V1 / "memory.limit_in_bytes",
            _CGROUP_V1 / "memory.stat",
            "total_inactive_file",
        ),
    ):
        usage = _read_int(usage_file)
        if usage is None:
            continue
        # Page cache that can be dropped is not memory the service holds.
        used = max(usage - _stat_value(stat_file, inactive_key), 0)
        limit = _read_int(limit_file)
        total = limit if limit is not None and limit < min(host_total, _NO_LIMIT_BYTES) else host_total
        return used, total
    memory = psutil.virtual_memory()
    return memory.total - memory.available, memory.total


class ResourceSampler:
    """Samples RAM and, when the model is on a CUDA device, that device's VRAM and name."""

    def __init__(self, cuda_index: int | None, gpu_name: str | None = None) -> None:
        self.cuda_index = cuda_index
        self.gpu_name = gpu_name or ("none" if cuda_index is None else f"cuda:{cuda_index}")

    def sample(self) -> ResourceSample:
        """A reading now."""
        allocated = reserved = 0.0
        if self.cuda_index is not None:
            import torch

            allocated = torch.cuda.memory_allocated(self.cuda_index) / GIB
            reserved = torch.cuda.memory_reserved(self.cuda_index) / GIB
        used, total = ram_used_and_total_bytes()
        return ResourceSample(
            gpu=self.gpu_name,
            vram_allocated_gb=round(allocated, 2),
            vram_reserved_gb=round(reserved, 2),
            ram_used_gb=round(used / GIB, 2),
            ram_total_gb=round(total / GIB, 2),
            ram_percent=round(100.0 * used / total, 1) if total else 0.0,
        )

    def reset_peak(self) -> None:
        """Start a new peak-VRAM window (a no-op without a GPU)."""
        if self.cuda_index is not None:
            import torch

            torch.cuda.reset_peak_memory_stats(self.cuda_index)

    def peak_gb(self) -> tuple[float, float]:
        """Peak allocated and reserved VRAM since the last reset."""
        if self.cuda_index is None:
            return 0.0, 0.0
        import torch

        return (
            round(torch.cuda.max_memory_allocated(self.cuda_index) / GIB, 2),
            round(torch.cuda.max_memory_reserved(self.cuda_index) / GIB, 2),
        )


def format_resource_line(operation: str, sample: ResourceSample, job_id: str | None = None) -> str:
    """The seed's line, with ` | job <id>` appended on generation lines."""
    line = (
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} | [{operation}] GPU: {sample.gpu} - "
        f"VRAM: {sample.vram_allocated_gb}GB (allocated) / {sample.vram_reserved_gb}GB (reserved) | "
        f"RAM: {sample.ram_used_gb}GB/{sample.ram_total_gb}GB ({sample.ram_percent}%)"
    )
    return f"{line} | job {job_id}" if job_id else line


def setup_resource_logger(log_dir: Path) -> logging.Logger:
    """The resource logger: plain lines to stdout and to LOG_DIR/resources.log (rotated)."""
    logger = logging.getLogger(RESOURCE_LOGGER_NAME)
    if logger.handlers:
        return logger
    log_dir.mkdir(parents=True, exist_ok=True)
    plain = logging.Formatter("%(message)s")
    for handler in (
        logging.StreamHandler(sys.stdout),
        RotatingFileHandler(
            log_dir / RESOURCE_LOG_FILE, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"
        ),
    ):
        handler.setFormatter(plain)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_resources(
    logger: logging.Logger, sampler: ResourceSampler, operation: str, job_id: str | None = None
) -> tuple[ResourceSample, str]:
    """Sample, log the line, and return (sample, line)."""
    sample = sampler.sample()
    line = format_resource_line(operation, sample, job_id)
    logger.info(line)
    return sample, line
