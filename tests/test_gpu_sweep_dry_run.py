"""`make gpu-check ARGS=--sweep` dry-run end to end on the CPU with the tiny shape: every step, real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_sweep_dry_run_measures_runnable_variants_records_refusals_and_runs_the_service(tmp_path: Path) -> None:
    out = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.gpu_check", "--sweep", "--shape", "tiny", "--variants", "sdpa,torch_flash"]
        + ["--out", str(out), "--work-dir", str(tmp_path / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    sweep = json.loads((out / "sweep" / "sweep.json").read_text())
    sdpa, torch_flash = sweep["variants"]["sdpa"], sweep["variants"]["torch_flash"]
    # The runnable variant: every step written, its greedy tokens the same as plain generate's.
    assert sdpa["done"] and [row["concurrent"] for row in sdpa["raw"]] == [1, 8, 32]
    assert sdpa["greedy_first_difference"] == [None] * 8
    # The one the CPU can't run says why, in its own results file too.
    assert "CUDA only" in torch_flash["refused"]
    assert "CUDA only" in json.loads((out / "sweep" / "variant-torch_flash.json").read_text())["refused"]
    assert sweep["best"] == "sdpa"
    assert [row["clients"] for row in sweep["service"]] == [1, 8, 32, 64]
    assert sweep["baseline"]["baseline"]["tokens_per_s"] > 0
    table = (out / "sweep" / "sweep.md").read_text()
    assert "CPU dry run" in table and "NOT GPU figures" in table
