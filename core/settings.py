"""The one settings object: every process reads its configuration here and nowhere else."""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MIB = 1024 * 1024
# REDIS_MAXMEMORY_MB=0: a quarter of the RAM leaves the rest to the API, the workers and the model, within these.
DEFAULT_REDIS_MAXMEMORY_FLOOR = 256 * MIB
DEFAULT_REDIS_MAXMEMORY_CEILING = 16 * 1024 * MIB
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
# Fields whose values never appear in an error, a log line or a repr (REDIS_URL may hold Redis's password).
SECRET_FIELDS = frozenset({"api_keys", "admin_api_keys", "webhook_secret", "redis_url", "redis_sentinel_password"})
DEFAULT_SENTINEL_PORT = 26379


class ApiKey(SecretStr):
    """An API key: hidden when printed, and equal (in constant time) to the plain string it holds."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return hmac.compare_digest(self.get_secret_value().encode(), other.encode())
        return super().__eq__(other)

    __hash__ = SecretStr.__hash__


def is_loopback_host(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, `localhost`)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def normalized_host(host: str) -> str:
    """A Host name as compared: lower case, an IPv6 address without its brackets."""
    return host.strip().lower().removeprefix("[").removesuffix("]")


_DNS_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9])?")


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Settings(BaseSettings):
    """Configuration from environment variables (and `.env`); a bad value refuses to start."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    port: int = Field(8001, ge=1, le=65535)
    # None means "not given": `make run` then starts an embedded redis-server;
    # other processes use the default.
    redis_url: str | None = None
    # Redis Sentinel (docs/redis-ha.md): REDIS_SENTINELS="host:port,host:port,..." makes every program ask these
    # sentinels where the master named REDIS_SENTINEL_MASTER is, and ask again after a failover. REDIS_URL then
    # gives only what a connection to the master needs beside its address: its scheme (rediss:// for TLS, to the
    # sentinels too), user, password and database number; its host and port are not used.
    # REDIS_SENTINEL_PASSWORD: the sentinels' own password, when they have one (unused without REDIS_SENTINELS).
    redis_sentinels: Annotated[list[tuple[str, int]], NoDecode] = Field(default_factory=list)
    redis_sentinel_master: str = "mymaster"
    redis_sentinel_password: SecretStr | None = None
    # The promise behind a 202 with replicas: an accepted job (and a recorded outcome) has reached at least
    # REDIS_MIN_REPLICA_ACKS replicas (Redis's WAIT), within REDIS_REPLICA_ACK_TIMEOUT_MS, or the API answers 503 with
    # Retry-After (and the job's id) and the worker records the outcome again. 0: no waiting (one Redis, no replica).
    redis_min_replica_acks: int = Field(0, ge=0, le=16)
    redis_replica_ack_timeout_ms: int = Field(1000, ge=1, le=60_000)
    model_dir: Path = Path("./model")
    # The name the OpenAI-compatible endpoints serve the model under (GET /v1/models, `model` in answers); unset:
    # the model folder's name.
    model_name: str | None = None
    device: str = "auto"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    # Jobs the GPU worker runs at once; 1 = one `generate` at a time, more = continuous batching.
    max_batch_size: int = Field(8, ge=1, le=1024)
    # KV-cache budget of the batching engine: a share of the GPU memory left after loading, or GiB of RAM on CPU.
    kv_cache_memory_percent: float = Field(0.8, gt=0, lt=1)
    kv_cache_cpu_gb: float = Field(1.0, gt=0)
    # The batching engine's variant (worker/engine_variant.py). `auto` everywhere is today's engine: a flash-attention
    # package when one is installed on a GPU, else SDPA; CUDA graphs and compile as transformers decides for it.
    # ENGINE_ATTENTION=torch_flash runs PyTorch's own flash kernel (CUDA, FP16/BF16 only); ENGINE_CUDA_GRAPHS=on forces
    # graphs for any attention; ENGINE_COMPILE_LEVEL 1-3 compiles the step. Shapes are padded for graphs and compile to
    # multiples of ENGINE_Q_PADDING_TOKENS / ENGINE_KV_PADDING_TOKENS (0: chosen from MAX_BATCH_SIZE for decode steps).
    # A variant this machine can't run refuses to start: a sweep or an A/B must never measure another one.
    engine_attention: Literal["auto", "sdpa", "torch_flash", "flash_attention_2", "flash_attention_3"] = "auto"
    engine_cuda_graphs: Literal["auto", "on", "off"] = "auto"
    engine_compile_level: int = Field(0, ge=0, le=3)
    engine_q_padding_tokens: int = Field(0, ge=0, le=8192)
    engine_kv_padding_tokens: int = Field(0, ge=0, le=1_048_576)
    # Jobs waiting on the queue (batch lines included) beyond which submissions get 503.
    max_queue_depth: int = Field(200_000, ge=1)
    max_tokens_limit: int = Field(4096, ge=1)
    max_prompt_chars: int = Field(200_000, ge=1)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    # POST /batches takes up to 50,000 lines in one body.
    max_batch_body_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    webhook_allow_private: bool = False
    # Seconds to wait before each retry of a failed delivery (jittered); the default spans about a day.
    webhook_retry_schedule_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5, 300, 1800, 7200, 18000, 36000, 36000]
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120)
    webhook_concurrency: int = Field(16, ge=1, le=256)
    # How long a finished job is kept (a batch's jobs: from when the batch completes); nothing expires while it waits.
    job_ttl_seconds: int = Field(7 * 24 * 3600, ge=1)
    log_dir: Path = Path("./logs")
    # Where `make run` keeps its state (the embedded Redis's data, the generated webhook secret); relative to the repo.
    run_dir: Path = Path("./.run")
    # How long the synchronous /v1/generate waits before answering 504 with the job id.
    sync_wait_seconds: float = Field(300.0, gt=0)
    # Synchronous calls (/v1/generate, OpenAI completions with or without `stream`): a caller that leaves cancels
    # its job unless it sent an Idempotency-Key (it means to come back for the result) or this is false; a wait
    # rides out a Redis outage this long before answering 503 with the job's id.
    cancel_on_disconnect: bool = True
    sync_wait_outage_seconds: float = Field(10.0, ge=0, le=300)
    # A quiet `GET /jobs/<id>/events` stream sends a keep-alive comment this often (proxies drop idle connections).
    sse_keepalive_seconds: float = Field(15.0, gt=0, le=300)
    # Give cached CUDA memory back after every generation: a little slower, but each job's resource log
    # starts from the same baseline.
    empty_cuda_cache_after_job: bool = True
    gpu_queue: str = "gpu"
    worker_heartbeat_seconds: float = Field(5.0, gt=0)
    # Reliability: retries of jobs whose worker died, deadlines, graceful shutdown, recovery of lost jobs.
    max_attempts: int = Field(3, ge=1, le=20)
    job_timeout_seconds: float = Field(900.0, gt=0)
    broker_visibility_timeout_seconds: int = Field(3600, ge=60)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    reconcile_interval_seconds: float = Field(5.0, gt=0)
    # A queued job with no message on the broker for this long is published again (an API died mid-submit).
    stale_queued_seconds: float = Field(60.0, gt=0)
    # One line per execution (job, attempt, worker), kept outside Redis: an audit of what really ran.
    execution_log: Path | None = None
    redis_socket_timeout_seconds: float = Field(2.0, gt=0)
    # Stuck consumers (the worker lives, its Celery consumer takes nothing): every CANARY_INTERVAL_SECONDS the GPU
    # worker sends itself a canary through its consumer; one not consumed within CANARY_TIMEOUT_SECONDS (while
    # Redis takes writes) makes it hand its jobs back and exit for its supervisor to restart it. 0 switches it off.
    canary_interval_seconds: float = Field(5.0, gt=0)
    canary_timeout_seconds: float = Field(45.0, ge=0)
    # The API's edge. API_HOST: where the API listens (`make run`) or is published on the host (compose);
    # beyond loopback without API_KEYS it refuses to start unless ALLOW_OPEN_API=true says that is meant.
    api_host: str = "127.0.0.1"
    allow_open_api: bool = False
    # Files uploaded for OpenAI batches (`POST /v1/files`), and the output files made from their results: kept
    # this long from their creation (30 days, as OpenAI keeps batch files), and at most this large (200 MiB).
    openai_file_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)
    openai_file_max_bytes: int = Field(200 * 1024 * 1024, ge=1024)
    # An Idempotency-Key claim whose submission stored nothing for this long (its API died mid-submit) is taken
    # over by the next request with the same key and body.
    idempotency_stale_seconds: float = Field(10.0, gt=0)
    # Ports a callback URL may name; WEBHOOK_ALLOW_PRIVATE=true also lets local receivers use any port.
    webhook_allowed_ports: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [80, 443])

    # The metrics history for the console: one sample every METRICS_SAMPLE_SECONDS (taken by an ops worker),
    # kept for METRICS_HISTORY_SECONDS.
    metrics_sample_seconds: float = Field(5.0, ge=0.2, le=3600)
    metrics_history_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    # logs/jobs.jsonl: one line per finished job, rotated past JOB_LOG_MAX_BYTES (5 old files kept). Prompts and
    # outputs are user data: they are written only when LOG_PROMPTS=true.
    job_log_max_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    log_prompts: bool = False

    # Fairness at the API edge, per API key (with API_KEYS unset every caller is one owner and shares them).
    # Requests per key (flask-limiter syntax, e.g. "600/minute" or "20/second;600/minute"); "" switches it off.
    rate_limit: str = "600/minute"
    # Synchronous /v1/generate calls one key may have waiting at once; past it, 429 and no job is created.
    max_waits_per_key: int = Field(256, ge=1)
    # Jobs (batch lines included) one key may have queued at once; past it, 429. Room for one full batch (50,000
    # lines), a quarter of MAX_QUEUE_DEPTH: one key alone can't fill the queue. Keys take turns on the GPU anyway
    # (core/jobs/fair_queue.py); this bounds what one key holds in Redis.
    max_queued_per_key: int = Field(50_000, ge=1)
    # API keys allowed `priority: high` (the others get 403); with API_KEYS unset everyone is.
    high_priority_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Storage per API key and Redis's memory budget. A key's uploaded files (`POST /v1/files`) count until deleted
    # or expired: at most MAX_FILES_PER_KEY of them and MAX_FILE_BYTES_PER_KEY bytes (512 MiB: two of the largest
    # files and change), so several keys' quotas together fit the default Redis budget of a 16 GiB machine.
    max_files_per_key: int = Field(100, ge=1, le=10_000)
    max_file_bytes_per_key: int = Field(512 * 1024 * 1024, ge=1024)
    # `maxmemory` of the Redis `make run` starts (compose passes it to its Redis too); 0: a quarter of this
    # machine's RAM, at least 256 MiB and at most 16 GiB (see redis_maxmemory_bytes).
    redis_maxmemory_mb: int = Field(0, ge=0)
    # Past this share of Redis's maxmemory the API refuses new work (503) and leaves the rest for the workers to
    # record the outcomes of running jobs; a Redis without maxmemory is never checked.
    redis_high_water_percent: int = Field(85, ge=1, le=100)

    # Long-lived connections. `GET /jobs/<id>/events` streams one key may have open at once (past it, 429), and
    # how long one stream lasts before the server ends it (the client resumes with Last-Event-ID). Each API
    # process takes at most API_WORKER_CONNECTIONS connections (gunicorn's --worker-connections) and serves
    # long-lived requests (event streams, synchronous and streamed completions) on all but
    # API_RESERVED_CONNECTIONS of them (past that, 503): the rest stay for /healthz and short calls.
    max_streams_per_key: int = Field(128, ge=1)
    sse_max_stream_seconds: float = Field(300.0, ge=1)
    api_worker_connections: int = Field(1000, ge=2, le=100_000)
    api_reserved_connections: int = Field(100, ge=1)

    # Who may reach the API, and how. ALLOWED_HOSTS: Host names (no port) answered beside the loopback names, `*`
    # for any; unset: any with API_KEYS, else only loopback names (and API_HOST when it names one host), so a web
    # page's DNS rebinding can't read a keyless API. TRUST_PROXY_HOPS: reverse proxies in front of the API whose
    # X-Forwarded-For/-Proto it believes (0: none, the caller is the connection's peer). ADMIN_API_KEYS: the keys
    # (among API_KEYS) that may read /metrics, /metrics/history and /readyz's worker details.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trust_proxy_hops: int = Field(0, ge=0, le=5)
    admin_api_keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        hosts = [normalized_host(host) for host in value]
        if any(not (host == "*" or _DNS_NAME.fullmatch(host) or _is_ip_address(host)) for host in hosts):
            raise ValueError("must be host names or addresses without a port (or *), separated by commas")
        return hosts

    @model_validator(mode="after")
    def _admins_hold_keys(self) -> Settings:
        if self.admin_api_keys and any(admin not in self.api_key_values for admin in self.admin_api_keys):
            raise ValueError("every ADMIN_API_KEYS key must also be one of API_KEYS")
        return self

    @field_validator("high_priority_keys", mode="before")
    @classmethod
    def _split_high_priority_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        value = value.strip()
        if value:
            parse_many(value)  # raises ValueError naming what it could not read
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DEVICE_PATTERN.match(value):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return value

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("webhook_allowed_ports", mode="before")
    @classmethod
    def _split_ports(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_allowed_ports")
    @classmethod
    def _ports_in_range(cls, value: list[int]) -> list[int]:
        if any(not 1 <= port <= 65535 for port in value):
            raise ValueError("ports must be between 1 and 65535")
        return value

    @field_validator("webhook_retry_schedule_seconds", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_retry_schedule_seconds")
    @classmethod
    def _schedule_positive(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must be zero or more seconds")
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, value: object) -> object:
        if isinstance(value, str):
            return [_host_and_port(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_sentinel_master")
    @classmethod
    def _check_master_name(cls, value: str) -> str:
        value = value.strip()
        if not value or any(character.isspace() for character in value):
            raise ValueError("must be the master's name in the sentinels' configuration, without spaces")
        return value

    @model_validator(mode="after")
    def _sentinels_with_a_usable_url(self) -> Settings:
        if self.redis_sentinels and self.redis_url is not None and self.redis_url.startswith("unix://"):
            raise ValueError("REDIS_SENTINELS reach Redis over TCP: REDIS_URL can't be a unix:// socket with them")
        return self

    @field_validator("redis_url", "webhook_secret", "model_name", "redis_sentinel_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `KEY=` in .env or `${KEY:-}` in compose means "not configured".
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _deadline_fits_the_broker(self) -> Settings:
        # A job outliving the visibility timeout would be delivered to a second worker while it still runs.
        if self.job_timeout_seconds + self.shutdown_grace_seconds + 60 > self.broker_visibility_timeout_seconds:
            raise ValueError(
                "JOB_TIMEOUT_SECONDS + SHUTDOWN_GRACE_SECONDS + 60 must stay below BROKER_VISIBILITY_TIMEOUT_SECONDS "
                f"({self.job_timeout_seconds:g} + {self.shutdown_grace_seconds:g} + 60 > "
                f"{self.broker_visibility_timeout_seconds})"
            )
        return self

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from core.webhooks.deliveries import secret_key_bytes

            secret_key_bytes(value.get_secret_value())  # raises ValueError with the reason, never the value
        return value

    @model_validator(mode="after")
    def _open_only_when_meant(self) -> Settings:
        # Keys unset means anyone who reaches the API may use it: only loopback, unless explicitly allowed.
        if not self.api_keys and not self.allow_open_api and not is_loopback_host(self.api_host):
            raise ValueError(
                f"API_HOST={self.api_host} reaches beyond this machine but API_KEYS is not set: "
                "set API_KEYS, or ALLOW_OPEN_API=true to serve without keys"
            )
        return self

    @model_validator(mode="after")
    def _padding_only_where_shapes_are_padded(self) -> Settings:
        # Without graphs or compile the manager never pads: a padding setting there would be silently ignored.
        padding_set = self.engine_q_padding_tokens or self.engine_kv_padding_tokens
        if padding_set and self.engine_cuda_graphs == "off" and self.engine_compile_level == 0:
            raise ValueError(
                "ENGINE_Q_PADDING_TOKENS / ENGINE_KV_PADDING_TOKENS pad shapes for CUDA graphs or compile only: "
                "set ENGINE_CUDA_GRAPHS to on or auto, or ENGINE_COMPILE_LEVEL above 0"
            )
        return self

    @model_validator(mode="after")
    def _connections_left_in_reserve(self) -> Settings:
        if self.api_reserved_connections >= self.api_worker_connections:
            raise ValueError(
                "API_RESERVED_CONNECTIONS must stay below API_WORKER_CONNECTIONS "
                f"({self.api_reserved_connections} >= {self.api_worker_connections}): no connection would be left "
                "for long-lived requests"
            )
        return self

    @property
    def max_long_requests_per_process(self) -> int:
        """Long-lived requests one API process serves at once: its connections less those kept in reserve."""
        return self.api_worker_connections - self.api_reserved_connections

    @property
    def api_key_values(self) -> list[str]:
        """The API keys as plain strings, for comparing against what a caller presents."""
        return [key.get_secret_value() for key in self.api_keys]

    @property
    def served_model_name(self) -> str:
        """What the OpenAI-compatible endpoints call the model: MODEL_NAME, else the model folder's name."""
        return self.model_name or self.model_dir.resolve().name

    @property
    def redis_maxmemory_bytes(self) -> int:
        """The memory budget for a Redis this project starts: REDIS_MAXMEMORY_MB, else a share of the RAM."""
        if self.redis_maxmemory_mb:
            return self.redis_maxmemory_mb * MIB
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return min(max(ram // 4, DEFAULT_REDIS_MAXMEMORY_FLOOR), DEFAULT_REDIS_MAXMEMORY_CEILING)

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL processes connect to (with REDIS_SENTINELS: the master's credentials, TLS and database)."""
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def uses_sentinel(self) -> bool:
        """True when the programs find the Redis master through REDIS_SENTINELS."""
        return bool(self.redis_sentinels)


def _host_and_port(text: str) -> tuple[str, int]:
    """`host:port` (or `host`, `[v6]:port`) as a pair; the port defaults to the sentinels' 26379."""
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:  # a name, an IPv4 address or a bare IPv6 address
        host, port = text, ""
    if not host or not (_DNS_NAME.fullmatch(host.lower()) or _is_ip_address(host)) or not (port or "0").isdigit():
        raise ValueError(f"{text!r} is not host:port")
    number = int(port) if port else DEFAULT_SENTINEL_PORT
    if not 1 <= number <= 65535:
        raise ValueError(f"{text!r}: the port must be between 1 and 65535")
    return host, number


def redacted_url(url: str) -> str:
    """A URL fit to print: its password, if any, replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address goes back in brackets
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_api_warning(settings: Settings) -> str:
    """What the API says at start when it runs without keys: loopback only, or open because that was asked for."""
    if is_loopback_host(settings.api_host):
        return (
            f"API_KEYS is not set: the API serves this machine only (API_HOST={settings.api_host}); "
            "set API_KEYS before exposing it"
        )
    return f"API_KEYS is not set and ALLOW_OPEN_API=true: the API is open to anyone who reaches {settings.api_host}"


def _one_line_reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        name = ".".join(loc).upper() or "settings"
        # The input is echoed only for one plain field: a model-wide error's input is every value, secrets included.
        shows_input = len(loc) >= 1 and loc[0] in Settings.model_fields and loc[0] not in SECRET_FIELDS
        parts.append(f"{name}: {item['msg']} (got {item.get('input')!r})" if shows_input else f"{name}: {item['msg']}")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once; on a bad value print one line and exit."""
    try:
        return Settings()
    except ValidationError as error:
        print(f"configuration error: {_one_line_reason(error)}", file=sys.stderr)
        raise SystemExit(2) from None
