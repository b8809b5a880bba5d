"""The API's services: wired once to one store and one queue; the broker's queue is the default."""

from __future__ import annotations

import pytest

from api.services import BrokerQueue, Services, api_redis_client
from broker.publisher import JobPublisher
from core.errors import StoreUnavailable
from core.jobs.store import JobStore


def test_services_share_the_store_and_publish_through_the_given_queue(api):
    services: Services = api.app.extensions["llm"]
    job = services.submit_job({"prompt": "Hi"}, "owner-a")
    assert api.queue.published == [(job.id, "normal")]
    assert services.store.get(job.id).owner == "owner-a"


def test_without_a_queue_the_broker_queue_publishes_to_the_gpu_queue(make_settings, request):
    settings = make_settings(gpu_queue=f"unit-services-{request.node.name}")
    store = JobStore(api_redis_client(settings), job_ttl_s=60)
    services = Services.build(settings, store)
    queue = services.submit_job.queue
    assert isinstance(queue, BrokerQueue)
    assert queue.depth() == 0
    queue.publish(["a" * 32, "b" * 32], "high")
    assert queue.depth() == 2


def test_the_broker_queue_turns_an_unreachable_broker_into_store_unavailable(make_settings):
    settings = make_settings(redis_url="redis://127.0.0.1:1/0", redis_socket_timeout_seconds=0.2)
    queue = BrokerQueue(JobPublisher(settings), api_redis_client(settings))
    with pytest.raises(StoreUnavailable):
        queue.depth()


def test_the_api_client_holds_a_connection_per_request_it_serves(make_settings):
    client = api_redis_client(make_settings(api_worker_connections=500))
    assert client.connection_pool.max_connections >= 500
