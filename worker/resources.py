"""Resource samples (RAM, VRAM) and the resource-log line, to stdout and a rotating file."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from logging.handlers import RotatingFileHandler
from pathlib import Path

import psutil

from core.jobs.records import ResourceReading

GIB = 1024**3
RESOURCE_LOGGER_NAME = "llm.resources"
RESOURCE_LOG_FILE = "resources.log"

_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")
PEAK_POLL_S = 0.02
# cgroup v1 reports "no limit" as a huge page-aligned number.
_NO_LIMIT_BYTES = 1 << 60


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


class PeakWindow:
    """The highest VRAM seen while one job ran (GB)."""

    def __init__(self) -> None:
        self.allocated_gb = 0.0
        self.reserved_gb = 0.0

    def note(self, allocated_gb: float, reserved_gb: float) -> None:
        self.allocated_gb = max(self.allocated_gb, allocated_gb)
        self.reserved_gb = max(self.reserved_gb, reserved_gb)


class ResourceSampler:
    """Samples RAM and, when the model is on a CUDA device, that device's VRAM and name."""

    def __init__(self, cuda_index: int | None, gpu_name: str | None = None) -> None:
        self.cuda_index = cuda_index
        self.gpu_name = gpu_name or ("none" if cuda_index is None else f"cuda:{cuda_index}")
        self._windows: set[PeakWindow] = set()
        self._windows_lock = threading.Lock()
        self._poller: threading.Thread | None = None

    def sample(self) -> ResourceReading:
        """A reading now."""
        allocated = reserved = 0.0
        if self.cuda_index is not None:
            import torch

            allocated = torch.cuda.memory_allocated(self.cuda_index) / GIB
            reserved = torch.cuda.memory_reserved(self.cuda_index) / GIB
        used, total = ram_used_and_total_bytes()
        return ResourceReading(
            gpu=self.gpu_name,
            vram_allocated_gb=round(allocated, 2),
            vram_reserved_gb=round(reserved, 2),
            ram_used_gb=round(used / GIB, 2),
            ram_total_gb=round(total / GIB, 2),
            ram_percent=round(100.0 * used / total, 1) if total else 0.0,
        )

    @contextmanager
    def peak_window(self) -> Iterator[PeakWindow]:
        """The peak VRAM while the block runs; jobs overlap in a batch, so each has its own window."""
        window = PeakWindow()
        if self.cuda_index is None:
            yield window
            return
        import torch

        with self._windows_lock:
            # Alone, the job may reset torch's exact peak counters: nobody else's window is spoiled by it,
            # and no later window resets them while this one is open.
            exact = not self._windows
            if exact:
                torch.cuda.reset_peak_memory_stats(self.cuda_index)
            self._windows.add(window)
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(target=self._poll_peaks, name="vram-peaks", daemon=True)
                self._poller.start()
        try:
            self._record(window)
            yield window
        finally:
            self._record(window)
            if exact:
                window.note(
                    torch.cuda.max_memory_allocated(self.cuda_index) / GIB,
                    torch.cuda.max_memory_reserved(self.cuda_index) / GIB,
                )
            with self._windows_lock:
                self._windows.discard(window)

    def _record(self, window: PeakWindow) -> None:
        import torch

        window.note(
            torch.cuda.memory_allocated(self.cuda_index) / GIB, torch.cuda.memory_reserved(self.cuda_index) / GIB
        )

    def _poll_peaks(self) -> None:
        # Overlapping jobs can't each reset torch's process-wide peak counters: sample for them instead.
        while True:
            with self._windows_lock:
                windows = list(self._windows)
                if not windows:
                    self._poller = None
                    return
            for window in windows:
                self._record(window)
            time.sleep(PEAK_POLL_S)


def format_resource_line(operation: str, sample: ResourceReading, job_id: str | None = None) -> str:
    """The resource-log line, with ` | job <id>` appended on generation lines."""
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
        RotatingFileHandler(log_dir / RESOURCE_LOG_FILE, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"),
    ):
        handler.setFormatter(plain)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_resources(
    logger: logging.Logger, sampler: ResourceSampler, operation: str, job_id: str | None = None
) -> tuple[ResourceReading, str]:
    """Sample, log the line, and return (sample, line)."""
    sample = sampler.sample()
    line = format_resource_line(operation, sample, job_id)
    logger.info(line)
    return sample, line
