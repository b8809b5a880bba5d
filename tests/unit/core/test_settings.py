"""The settings object's rules across fields, its secrets kept out of errors, and the helpers beside it (the
environment parsing itself: tests/test_settings.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import (
    ApiKey,
    Settings,
    get_settings,
    is_loopback_host,
    normalized_host,
    open_api_warning,
    redacted_url,
)
from tests.conftest import WEBHOOK_SECRET


def build(**values) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"job_timeout_seconds": 4000, "broker_visibility_timeout_seconds": 3600}, "below BROKER_VISIBILITY_TIMEOUT"),
        ({"api_host": "0.0.0.0"}, "API_KEYS is not set"),
        ({"api_keys": ["a"], "admin_api_keys": ["b"]}, "ADMIN_API_KEYS key must also be one of API_KEYS"),
        ({"api_reserved_connections": 100, "api_worker_connections": 100}, "must stay below API_WORKER_CONNECTIONS"),
        ({"engine_q_padding_tokens": 64, "engine_cuda_graphs": "off", "engine_compile_level": 0}, "pad shapes"),
        ({"webhook_allowed_ports": "80,70000"}, "between 1 and 65535"),
        ({"webhook_retry_schedule_seconds": "1,-2"}, "zero or more"),
        ({"allowed_hosts": "example.com:8080"}, "without a port"),
    ],
)
def test_values_that_contradict_each_other_are_refused_saying_why(values, words):
    with pytest.raises(ValidationError, match=words):
        build(**values)


def test_an_open_api_beyond_loopback_needs_to_be_asked_for():
    settings = build(api_host="0.0.0.0", allow_open_api=True)
    assert "open to anyone" in open_api_warning(settings)
    assert "this machine only" in open_api_warning(build(api_host="127.0.0.1"))


def test_lists_and_empty_values_are_read_from_strings():
    settings = build(allowed_hosts="Example.COM, [::1]", webhook_allowed_ports="443, 8443", redis_url="",
                     webhook_retry_schedule_seconds="1,2.5")  # fmt: skip
    assert settings.allowed_hosts == ["example.com", "::1"] and settings.webhook_allowed_ports == [443, 8443]
    assert settings.redis_url is None and settings.effective_redis_url.startswith("redis://")
    assert settings.webhook_retry_schedule_seconds == [1.0, 2.5]


def test_a_secret_is_never_echoed_in_the_refusal(monkeypatch, capsys):
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_not-base64-!!-hunter2")
    get_settings.cache_clear()
    with pytest.raises(SystemExit) as stopped:
        get_settings()
    get_settings.cache_clear()
    line = capsys.readouterr().err
    assert stopped.value.code == 2 and line.startswith("configuration error: WEBHOOK_SECRET")
    assert "hunter2" not in line and line.count("\n") == 1


def test_api_keys_compare_with_plain_strings_and_print_hidden():
    settings = build(api_keys="alpha, beta", webhook_secret=WEBHOOK_SECRET)
    assert settings.api_keys[0] == "alpha" and settings.api_key_values == ["alpha", "beta"]
    assert "alpha" not in repr(settings.api_keys) and ApiKey("x") != "y"


def test_derived_figures():
    settings = build(api_worker_connections=100, api_reserved_connections=20, redis_maxmemory_mb=64)
    assert settings.max_long_requests_per_process == 80
    assert settings.redis_maxmemory_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("host", "loopback"), [("localhost", True), ("127.0.0.9", True), ("[::1]", True), ("0.0.0.0", False)]
)
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


def test_urls_and_hosts_as_printed_and_compared():
    assert redacted_url("redis://user:pw@[::1]:6380/0") == "redis://user:***@[::1]:6380/0"
    assert redacted_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert normalized_host(" [FE80::1] ") == "fe80::1"
