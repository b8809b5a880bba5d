"""A short chaos soak (`make soak`'s harness, tests/soak/): about a minute of every kind of client while the GPU
worker is killed with -9, paused past its heartbeat and stopped with SIGTERM, the ops worker is killed and Redis
restarts, then every Jepsen-style check must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak.__main__ import report
from tests.soak.run import SoakConfig, run_soak

pytestmark = pytest.mark.faults

SOAK_S = 60
SHORT_SOAK_FAULTS = ("kill-9-gpu", "sigstop-gpu", "restart-redis", "kill-ops", "sigterm-gpu")


def test_short_soak_with_faults_breaks_no_promise(tmp_path: Path, demo_model_dir: Path) -> None:
    summary = run_soak(
        SoakConfig(SOAK_S, len(SHORT_SOAK_FAULTS), tmp_path / "soak", demo_model_dir, 20, SHORT_SOAK_FAULTS)
    )
    print(report(summary))
    assert len(summary["faults"]) == len(SHORT_SOAK_FAULTS)
    assert sum(summary["jobs_by_kind"].values()) > 0 and summary["executions"] > 0
    assert summary["violations"] == []
