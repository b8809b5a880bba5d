"""Where every benchmark writes: this machine's description and bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine_description() -> str:
    """The host's name, CPU cores, RAM and processor, as each results entry names its machine."""
    return (
        f"{platform.node()}: {os.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.processor() or platform.machine()}"
    )


def record(text: str) -> None:
    """Append an entry to bench/RESULTS.md and say so."""
    with RESULTS.open("a", encoding="utf-8") as results:
        results.write("\n" + text)
    print(f"appended to {RESULTS}")


def report(text: str, *, keep: bool) -> int:
    """Print a bench's figures and, when `keep`, append them to bench/RESULTS.md; the bench's exit status (0)."""
    print(text)
    if keep:
        record(text)
    return 0
