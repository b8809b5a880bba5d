"""The API process's services: the stores and the use cases, wired once to Redis and the broker."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from broker.publisher import JobPublisher
from core.batches.store import BatchStore
from core.batches.submission import SubmitBatch
from core.events.follow import JobEvents
from core.events.listener import JobEventListener
from core.events.stream import TokenStreams
from core.jobs.cancellation import CancelBatch, CancelJob
from core.jobs.context_window import ContextWindow
from core.jobs.idempotency import IdempotencyKeys
from core.jobs.priority import Priority
from core.jobs.store import JobStore
from core.jobs.submission import JobQueue, SubmitJob
from core.jobs.waits import JobWaits
from core.limits.file_quota import FileQuota
from core.limits.long_requests import LongRequests
from core.limits.memory_budget import MemoryBudget
from core.limits.stream_slots import StreamSlots
from core.limits.wait_slots import WaitSlots
from core.metrics.history import MetricsHistory
from core.openai.batch_service import OpenAIBatches
from core.openai.batch_store import OpenAIBatchStore
from core.openai.files import FileStore
from core.redis.clients import redis_client
from core.redis.replication import ReplicaAcks
from core.settings import Settings
from core.workers.registry import WorkerRegistry

# Redis connections one API process follows jobs with (their streams and the jobs themselves), whatever the number
# of clients: a follower reads only to catch up and at the end (new entries reach it through the process's one
# subscription), and waits its turn for a connection.
EVENT_READ_CONNECTIONS = 16
# How long a request waits for a free connection of a pool before it is answered 503. Generous: a burst of
# followers catching up at once queues on the 16 (each read takes a millisecond or so); only a Redis that stopped
# answering for that long keeps them all busy.
POOL_WAIT_S = 60.0
# Beyond one connection per request the process serves: the subscriptions its listeners hold for good.
LISTENER_CONNECTIONS = 4


def api_redis_client(settings: Settings) -> redis.Redis:
    """The API process's main Redis client: as many connections as requests it serves at once (and its
    listeners), so a burst waits for one rather than fail at redis-py's default cap of 100."""
    return redis_client(
        settings,
        max_connections=settings.api_worker_connections + LISTENER_CONNECTIONS,
        pool_timeout_s=POOL_WAIT_S,
    )


class BrokerQueue:
    """The GPU queue on the broker, as core's JobQueue."""

    def __init__(self, publisher: JobPublisher, client: redis.Redis) -> None:
        self.publisher = publisher
        self.client = client

    def publish(self, job_ids: list[str], priority: Priority) -> None:
        """Put the job ids on the GPU queue."""
        self.publisher.publish_many(job_ids, priority)

    def depth(self) -> int:
        """Messages waiting on the GPU queue."""
        return self.publisher.queue_depth(self.client)


@dataclass(frozen=True)
class Services:
    """What the routes call, built once per API process."""

    settings: Settings
    store: JobStore
    waits: JobWaits
    workers: WorkerRegistry
    batches: BatchStore
    submit_job: SubmitJob
    submit_batch: SubmitBatch
    cancel_job: CancelJob
    cancel_batch: CancelBatch
    wait_slots: WaitSlots
    stream_slots: StreamSlots
    metrics_history: MetricsHistory
    job_events: JobEvents
    files: FileStore
    openai_batches: OpenAIBatches

    @classmethod
    def build(cls, settings: Settings, store: JobStore, queue: JobQueue | None = None) -> Services:
        """Wire the use cases to this store and queue (the broker's GPU queue when none is given)."""
        queue = queue or BrokerQueue(JobPublisher(settings), store.redis)
        batches = BatchStore(store)
        idempotency = IdempotencyKeys(store.redis, stale_after_s=settings.idempotency_stale_seconds)
        context_window = ContextWindow(settings.model_dir)
        event_reads = redis_client(settings, max_connections=EVENT_READ_CONNECTIONS, pool_timeout_s=POOL_WAIT_S)
        # One reading of Redis's memory per process, shared by everything that accepts new work.
        memory = MemoryBudget(store.redis, high_water_percent=settings.redis_high_water_percent)
        # A 202 promises the write reached REDIS_MIN_REPLICA_ACKS replicas (none asked: nothing is waited for).
        replicas = ReplicaAcks.from_settings(store.redis, settings)
        submit_batch = SubmitBatch(
            settings, batches, queue, idempotency, context_window, memory=memory, replicas=replicas
        )
        quota = FileQuota(
            store.redis,
            max_files=settings.max_files_per_key,
            max_bytes=settings.max_file_bytes_per_key,
            file_ttl_s=settings.openai_file_ttl_seconds,
        )
        files = FileStore(
            store.redis,
            ttl_s=settings.openai_file_ttl_seconds,
            max_bytes=settings.openai_file_max_bytes,
            quota=quota,
            memory=memory,
        )
        # Event streams, synchronous waits and streamed completions share the process's places for long requests.
        long_requests = LongRequests(settings.max_long_requests_per_process)
        openai_records = OpenAIBatchStore(store.redis, ttl_s=settings.openai_file_ttl_seconds)
        return cls(
            settings=settings,
            store=store,
            waits=JobWaits(store),
            workers=WorkerRegistry(store.redis),
            batches=batches,
            submit_job=SubmitJob(settings, store, queue, idempotency, context_window, memory=memory, replicas=replicas),
            submit_batch=submit_batch,
            cancel_job=CancelJob(store),
            cancel_batch=CancelBatch(batches),
            wait_slots=WaitSlots(
                store.redis,
                limit=settings.max_waits_per_key,
                wait_s=settings.sync_wait_seconds,
                process=long_requests,
            ),
            # On the followers' pool: a burst of streams opening queues there, not on hundreds of new connections.
            stream_slots=StreamSlots(
                event_reads,
                limit=settings.max_streams_per_key,
                max_stream_s=settings.sse_max_stream_seconds,
                process=long_requests,
            ),
            metrics_history=MetricsHistory(
                store.redis, interval_s=settings.metrics_sample_seconds, window_s=settings.metrics_history_seconds
            ),
            job_events=JobEvents(
                JobStore(event_reads, job_ttl_s=settings.job_ttl_seconds),
                TokenStreams(event_reads),
                JobEventListener(store.redis),
                keepalive_s=settings.sse_keepalive_seconds,
            ),
            files=files,
            openai_batches=OpenAIBatches(
                openai_records, batches, files, submit_batch, model_name=settings.served_model_name
            ),
        )
