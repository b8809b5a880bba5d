"""Reading kombu's own keys in Redis: the GPU queue's lists, one per priority step."""

from __future__ import annotations

from urllib.parse import quote

import redis

from broker.names import PRIORITY_STEPS
from core.jobs.priority import Priority
from core.redis.clients import master_connection_options, sentinel_options
from core.settings import Settings

_KOMBU_PRIORITY_SEPARATOR = "\x06\x16"


def priority_list_names(queue: str) -> list[str]:
    """The Redis lists that hold the queue's messages, one per priority step."""
    return list(priority_lists(queue).values())


def priority_lists(queue: str) -> dict[Priority, str]:
    """Each priority (`high`, `normal`, `low`, `batch`) and the Redis list holding its messages on the queue."""
    return {
        priority: queue if step == 0 else f"{queue}{_KOMBU_PRIORITY_SEPARATOR}{step}"
        for priority, step in PRIORITY_STEPS.items()
    }


def waiting_message_count(client: redis.Redis, queue: str) -> int:
    """Messages waiting on the queue, all priorities together."""
    pipe = client.pipeline(transaction=False)
    for name in priority_list_names(queue):
        pipe.llen(name)
    return sum(pipe.execute())


def broker_url(settings: Settings) -> str:
    """kombu's URL of the broker: REDIS_URL, or with REDIS_SENTINELS one `sentinel://` per sentinel (`;` apart),
    each carrying the master's user, password and database (kombu takes them from the first)."""
    if not settings.uses_sentinel:
        return settings.effective_redis_url
    master = master_connection_options(settings)
    user, password = master.get("username"), master.get("password")
    credentials = ""
    if password is not None:
        credentials = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
    database = master.get("db", 0)
    return ";".join(
        f"sentinel://{credentials}{f'[{host}]' if ':' in host else host}:{port}/{database}"
        for host, port in settings.redis_sentinels
    )


def broker_transport_options(settings: Settings) -> dict:
    """kombu's transport options that REDIS_SENTINELS add: the master's name and how to talk to the sentinels."""
    if not settings.uses_sentinel:
        return {}
    return {"master_name": settings.redis_sentinel_master, "sentinel_kwargs": sentinel_options(settings)}


def broker_use_ssl(settings: Settings) -> dict | None:
    """kombu's TLS options for a `rediss://` master behind sentinels (a plain `rediss://` URL carries its own)."""
    if not settings.uses_sentinel or not settings.effective_redis_url.startswith("rediss://"):
        return None
    options = master_connection_options(settings)
    return {key: value for key, value in options.items() if key.startswith("ssl_")} or {"ssl_cert_reqs": "required"}
