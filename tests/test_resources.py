"""Resource samples and their log line, on a machine without a GPU."""

from __future__ import annotations

from core.jobs.records import ResourceReading
from tests.test_job_spine import RESOURCE_LOG_LINE
from worker.resources import ResourceSampler, format_resource_line, ram_used_and_total_bytes


def test_ram_reading_is_plausible():
    used, total = ram_used_and_total_bytes()
    assert 0 < used < total


def test_sample_without_gpu_says_none_and_zero_vram():
    sample = ResourceSampler(cuda_index=None).sample()
    assert sample.gpu == "none"
    assert sample.vram_allocated_gb == 0.0 and sample.vram_reserved_gb == 0.0
    assert 0 < sample.ram_percent < 100


def test_line_matches_the_resource_log_format_for_every_operation():
    sample = ResourceReading(
        gpu="NVIDIA GeForce RTX 4060 Laptop GPU",
        vram_allocated_gb=5.98,
        vram_reserved_gb=6.59,
        ram_used_gb=1.95,
        ram_total_gb=7.63,
        ram_percent=30.3,
    )
    for operation in ("Before model load", "After model load"):
        assert RESOURCE_LOG_LINE.match(format_resource_line(operation, sample))
    for operation in ("Before generation", "After generation"):
        line = format_resource_line(operation, sample, "0" * 32)
        assert RESOURCE_LOG_LINE.match(line) and line.endswith(" | job " + "0" * 32)
    assert "VRAM: 5.98GB (allocated) / 6.59GB (reserved) | RAM: 1.95GB/7.63GB (30.3%)" in line
