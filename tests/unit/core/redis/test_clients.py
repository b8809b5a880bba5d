"""REDIS_SENTINELS: the settings, the clients built from them (core/redis/clients.py), and a failover they ride over
(a master, a replica and three sentinels of the test's own, on loopback)."""

from __future__ import annotations

import time

import pytest
import redis
from pydantic import ValidationError

from broker.kombu_redis import broker_transport_options, broker_url
from broker.publisher import JobPublisher
from core.errors import StoreUnavailable
from core.redis.clients import master_connection_options, redis_client, redis_pool, sentinel_options
from core.redis.errors import redis_boundary
from core.settings import Settings
from tests.redis_ha import MASTER_NAME


def sentinel_settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_sentinels_are_read_as_hosts_and_ports():
    settings = sentinel_settings(redis_sentinels="10.0.0.1:26380, s2 ,[::1]:5000", redis_sentinel_master="prod")
    assert settings.redis_sentinels == [("10.0.0.1", 26380), ("s2", 26379), ("::1", 5000)]
    assert settings.uses_sentinel and settings.redis_sentinel_master == "prod"
    assert not sentinel_settings().uses_sentinel


@pytest.mark.parametrize(
    "values",
    [
        {"redis_sentinels": "h:port"},
        {"redis_sentinels": "h:0"},
        {"redis_sentinels": "h:1", "redis_sentinel_master": "my master"},
        {"redis_sentinels": "h:1", "redis_url": "unix:///tmp/redis.sock"},
        {"redis_min_replica_acks": -1},
    ],
)
def test_bad_sentinel_settings_are_refused(values):
    with pytest.raises(ValidationError):
        sentinel_settings(**values)


def test_the_broker_url_names_every_sentinel_with_the_masters_credentials():
    settings = sentinel_settings(
        redis_sentinels="a:1,b:2", redis_url="redis://:p%40ss@ignored:6379/3", redis_sentinel_password="s"
    )
    assert broker_url(settings) == "sentinel://:p%40ss@a:1/3;sentinel://:p%40ss@b:2/3"
    options = broker_transport_options(settings)
    assert options["master_name"] == "mymaster" and options["sentinel_kwargs"]["password"] == "s"
    assert broker_url(sentinel_settings(redis_url="redis://x:1/0")) == "redis://x:1/0"


def test_tls_and_its_ca_reach_the_master_and_the_sentinels_alike():
    settings = sentinel_settings(redis_sentinels="a:1", redis_url="rediss://:pw@x:6380/2?ssl_ca_certs=/etc/ca.pem")
    master = master_connection_options(settings)
    assert master["ssl"] is True and master["ssl_ca_certs"] == "/etc/ca.pem" and master["db"] == 2
    sentinels = sentinel_options(settings)
    assert sentinels["ssl"] is True and sentinels["ssl_ca_certs"] == "/etc/ca.pem" and "password" not in sentinels


def test_clients_follow_the_master_across_a_failover(redis_set):
    """Kill the master: the same client (and the rate limiter's pool) reaches the promoted replica by itself;
    meanwhile its calls fail as StoreUnavailable, never as another error."""
    settings = sentinel_settings(redis_sentinels=redis_set.sentinel_addresses, redis_sentinel_master=MASTER_NAME)
    client = redis_client(settings, max_connections=8, pool_timeout_s=1)
    pooled = redis.Redis(connection_pool=redis_pool(settings, max_connections=4, pool_timeout_s=1))
    client.set("before", "1")
    assert pooled.get("before") == b"1"
    publisher = JobPublisher(settings)
    publisher.publish("job-before")
    old_master = redis_set.master_address()

    redis_set.kill("redis-master")
    started, unavailable = time.monotonic(), 0
    while True:
        try:
            with redis_boundary():
                client.set("after", "1")
            break
        except StoreUnavailable:
            unavailable += 1
        assert time.monotonic() - started < 30, "no new master within 30 s"
        time.sleep(0.1)
    failover_s = time.monotonic() - started
    print(f"failover seen by a client after {failover_s:.1f} s ({unavailable} calls refused meanwhile)")
    assert redis_set.master_address() != old_master
    assert client.get("before") == "1" and pooled.get("after") == b"1"
    publisher.publish("job-after")  # kombu's sentinel transport found the new master too
    assert publisher.queue_depth(client) == 2
