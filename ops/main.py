"""The ops worker's process: the reconciler and the metrics sampler on threads of their own, webhook delivery on
the main one.

Run it with `python -m ops`. Several may run: they never take the same delivery, and the reconciler's moves are
transactions that a second one finds already done.
"""

from __future__ import annotations

import logging
import signal
import threading

from broker.publisher import JobPublisher
from core.jobs.store import JobStore
from core.redis.clients import redis_client
from core.settings import get_settings
from core.webhooks.queue import WebhookQueue
from ops.metrics_sampler import MetricsSampler
from ops.reconciler import Reconciler
from ops.webhook_delivery import WebhookSender

log = logging.getLogger("llm.ops")


def main() -> int:
    """Run until SIGINT or SIGTERM; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    client = redis_client(settings)
    store = JobStore(client, job_ttl_s=settings.job_ttl_seconds, queue=settings.gpu_queue)
    reconciler = Reconciler(settings, store, JobPublisher(settings))
    threading.Thread(target=reconciler.run, args=(stop,), name="reconciler", daemon=True).start()
    log.info("reconciler running every %g s", settings.reconcile_interval_seconds)
    sampler = MetricsSampler(settings, client)
    threading.Thread(target=sampler.run, args=(stop,), name="metrics-sampler", daemon=True).start()
    log.info("metrics history sampled every %g s", settings.metrics_sample_seconds)
    if settings.webhook_secret is None:
        # The API refuses webhook jobs without a secret, so there is nothing to deliver.
        log.warning("WEBHOOK_SECRET is not set: webhooks are disabled")
        stop.wait()
        return 0
    sender = WebhookSender(settings, store, WebhookQueue(client, ttl_s=settings.job_ttl_seconds))
    log.info("webhook delivery running (schedule %s s)", settings.webhook_retry_schedule_seconds)
    sender.run(stop)
    log.info("ops worker stopped")
    return 0
