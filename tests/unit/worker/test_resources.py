"""Resource readings on a machine without a GPU, and the resource-log line."""

from __future__ import annotations

import logging

from worker.resources import (
    PeakWindow,
    ResourceSampler,
    format_resource_line,
    log_resources,
    ram_used_and_total_bytes,
)


def test_ram_is_read_and_vram_is_zero_without_a_gpu():
    used, total = ram_used_and_total_bytes()
    assert 0 < used <= total
    reading = ResourceSampler(None).sample()
    assert reading.gpu == "none" and reading.vram_allocated_gb == 0.0 and 0 < reading.ram_percent <= 100


def test_a_peak_window_keeps_the_highest_figures():
    window = PeakWindow()
    window.note(1.0, 2.0)
    window.note(0.5, 3.0)
    assert (window.allocated_gb, window.reserved_gb) == (1.0, 3.0)
    with ResourceSampler(None).peak_window() as cpu_window:
        pass
    assert cpu_window.allocated_gb == 0.0


def test_the_line_names_the_operation_and_the_job():
    reading = ResourceSampler(None).sample()
    line = format_resource_line("Before generation", reading, "job-1")
    assert "[Before generation] GPU: none" in line and line.endswith("| job job-1")
    assert "| job" not in format_resource_line("Before model load", reading)


def test_log_resources_logs_the_line_it_returns(quiet_logger):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    quiet_logger.addHandler(handler)
    quiet_logger.setLevel(logging.INFO)
    try:
        reading, line = log_resources(quiet_logger, ResourceSampler(None), "After generation", "job-2")
    finally:
        quiet_logger.removeHandler(handler)
    assert lines == [line] and reading.gpu == "none"
