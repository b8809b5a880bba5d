"""The one settings object: environment parsing and the one-line refusal of a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from core.settings import Settings
from tests.conftest import ROOT


def test_defaults_match_the_readme():
    settings = Settings(_env_file=None)
    assert settings.port == 8001
    assert settings.device == "auto" and settings.dtype == "auto"
    assert settings.job_ttl_seconds == 7 * 24 * 3600
    assert settings.api_keys == [] and settings.webhook_allow_private is False


def test_environment_values_are_read_and_keys_split(monkeypatch):
    monkeypatch.setenv("API_KEYS", "alpha, beta,,gamma")
    monkeypatch.setenv("DEVICE", "CUDA:1")
    monkeypatch.setenv("MAX_BATCH_SIZE", "8")
    settings = Settings(_env_file=None)
    assert settings.api_keys == ["alpha", "beta", "gamma"]
    assert settings.device == "cuda:1" and settings.max_batch_size == 8


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("DEVICE", "tpu"),
        ("DTYPE", "int3"),
        ("REDIS_URL", "http://x"),
        ("WEBHOOK_SECRET", "x"),
    ],
)
def test_bad_value_is_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_bad_value_stops_a_process_with_one_line_naming_it():
    env = {"PATH": "/usr/bin:/bin", "PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-c", "from core.settings import get_settings; get_settings()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PORT" in lines[0] and "eighty" in lines[0]


def test_the_api_never_imports_torch_or_the_worker():
    code = (
        "import sys, api.app, api.wsgi\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'worker')))"
    )
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
