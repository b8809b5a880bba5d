"""The API's edge gives nothing away: secrets never printed, no Redis address in errors, readiness details only
for a trusted caller, and no open API beyond loopback unless that is asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from api.app import create_app
from core.settings import Settings
from launcher.redis_server import free_port
from tests.conftest import ROOT, WEBHOOK_SECRET

SECRET_KEY = "secret1"


def start_with(env: dict[str, str]) -> subprocess.CompletedProcess:
    """A process that reads the settings at start, as every service process does."""
    return subprocess.run(
        [sys.executable, "-c", "from core.settings import get_settings; get_settings()"],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        {"PORT": "eighty"},  # one field
        {"JOB_TIMEOUT_SECONDS": "99999"},  # a rule across fields, whose input is every value
        {"API_HOST": "0.0.0.0", "API_KEYS": ""},  # also across fields
        {"WEBHOOK_SECRET": "whsec_not-base64!"},  # the secret itself is the bad value
    ],
)
def test_a_bad_setting_at_start_never_prints_a_secret(bad):
    env = {"API_KEYS": SECRET_KEY, "WEBHOOK_SECRET": WEBHOOK_SECRET, **bad}
    result = start_with(env)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert len(output.strip().splitlines()) == 1 and output.startswith("configuration error:")
    assert SECRET_KEY not in output and WEBHOOK_SECRET not in output and "whsec_not-base64" not in output


def test_secrets_are_hidden_in_the_settings_repr():
    settings = Settings(_env_file=None, api_keys=SECRET_KEY, webhook_secret=WEBHOOK_SECRET)
    assert SECRET_KEY not in repr(settings) and WEBHOOK_SECRET not in repr(settings)
    assert SECRET_KEY not in str(settings.api_keys) and settings.api_key_values == [SECRET_KEY]


def test_listening_beyond_loopback_needs_keys_or_an_explicit_yes():
    assert Settings(_env_file=None).api_host == "127.0.0.1"
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        Settings(_env_file=None, api_host=host)
    with pytest.raises(ValidationError, match="API_KEYS"):
        Settings(_env_file=None, api_host="0.0.0.0")
    assert Settings(_env_file=None, api_host="0.0.0.0", api_keys="k").api_host == "0.0.0.0"
    assert Settings(_env_file=None, api_host="0.0.0.0", allow_open_api=True).allow_open_api


def test_a_503_never_names_the_redis_host_or_port(make_settings):
    port = free_port()
    client = create_app(make_settings(redis_url=f"redis://127.0.0.1:{port}/0")).test_client()
    for response in (
        client.post("/jobs", json={"prompt": "a"}),  # the queue's depth first (the broker layer)
        client.post("/jobs", json={"prompt": "a"}, headers={"Idempotency-Key": "k"}),  # the job store first
        client.get(f"/jobs/{'ab' * 16}"),  # shaped like a job id, so the store is asked
    ):
        assert response.status_code == 503
        text = response.get_data(as_text=True)
        assert str(port) not in text and "127.0.0.1" not in text, text
        assert response.get_json()["error"]["type"] == "store_unavailable"


def test_readyz_details_need_an_admin_key_when_keys_are_set(make_settings, redis_server):
    client = create_app(make_settings(api_keys=["k1", "boss"], admin_api_keys=["boss"])).test_client()
    anonymous = client.get("/readyz")
    assert set(anonymous.get_json()) == {"status"}
    for key in ("nope", "k1"):  # a wrong key, and a valid key that is no admin's
        refused = client.get("/readyz", headers={"Authorization": f"Bearer {key}"})
        assert set(refused.get_json()) == {"status"} and refused.status_code == anonymous.status_code
    admin = client.get("/readyz", headers={"Authorization": "Bearer boss"}).get_json()
    assert {"status", "redis", "workers"} <= set(admin)


def test_admin_keys_must_be_api_keys():
    assert Settings(_env_file=None, api_keys="a,b", admin_api_keys="b").admin_api_keys == ["b"]
    for admins, keys in (("c", "a,b"), ("a", "")):
        with pytest.raises(ValidationError, match="ADMIN_API_KEYS"):
            Settings(_env_file=None, api_keys=keys, admin_api_keys=admins)
    assert "bsecret" not in repr(Settings(_env_file=None, api_keys="a,bsecret", admin_api_keys="bsecret"))


def test_readyz_details_without_keys_only_for_a_local_caller(make_settings):
    client = create_app(make_settings()).test_client()
    assert {"status", "redis", "workers"} <= set(client.get("/readyz").get_json())  # 127.0.0.1
    remote = client.get("/readyz", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert set(remote.get_json()) == {"status"}
