"""Every Redis key this project writes, in one place (kombu's own queue keys are named after the queue)."""

JOB_KEY = "llm:job:{job_id}"  # JSON of the job object; no expiry until it is terminal (a batch's: its batch is)
OWNER_INDEX_KEY = "llm:jobs:owner:{owner}"  # sorted set: job ids by submission sequence, newest highest
JOB_SEQUENCE_KEY = "llm:jobs:seq"  # counter giving each job a unique, ordered listing position
JOB_DONE_CHANNEL = "llm:job-done:{job_id}"  # pub/sub: one message when the job reaches a terminal state
# Redis Stream of the job's events (core/events/stream.py): a `status` entry per status change from its first one,
# `token` entries with text deltas; capped above what one attempt writes; expires with the job
JOB_EVENTS_KEY = "llm:job:{job_id}:events"
# The attempt whose text may be added to that stream now: set in the transaction that starts the attempt, deleted by
# every other status change, so a superseded attempt (its worker paused past its heartbeat, its job requeued) adds
# nothing after it
JOB_EVENTS_WRITER_KEY = "llm:job:{job_id}:events:writer"
# pub/sub: each token entry of that stream as it is added [id, kind, value]; each status change [null, kind, value]
JOB_EVENTS_CHANNEL = "llm:job-events:{job_id}"
WORKERS_KEY = "llm:workers"  # sorted set: live GPU worker names by the Unix time their heartbeat runs out
WORKER_INFO_KEY = "llm:workers:info"  # hash: worker name -> JSON of what it announced (model, device...)
# set: queued jobs whose message a worker holds while they wait for a place in its engine (kill -9 would leave
# those messages unacknowledged until the broker's visibility timeout); a job leaves it when its execution ends
WORKER_RESERVED_KEY = "llm:workers:reserved:{name}"
RESERVING_WORKERS_KEY = "llm:workers:reserving"  # set: names of workers that hold such jobs
# Fair turns (core/jobs/fair_queue.py), per GPU queue and priority: each owner's line of queued jobs not yet taken by a
# worker (sorted set: job id by order), the owners with a line by the virtual time of their next turn (sorted set),
# the current virtual time, and each owner's last turn (hash). All live as long as jobs wait in them.
FAIR_OWNER_JOBS_KEY = "llm:fair:{queue}:{priority}:line:{owner}"
FAIR_OWNERS_KEY = "llm:fair:{queue}:{priority}:owners"
FAIR_CLOCK_KEY = "llm:fair:{queue}:{priority}:clock"
FAIR_SERVED_KEY = "llm:fair:{queue}:{priority}:served"
FAIR_MEMBERS_KEY = "llm:fair:{queue}:members"  # hash: job id -> priority, for every job in a line
FAIR_TURNS_KEY = "llm:fair:{queue}:turns"  # hash: job id -> turns its take spends, for those spending more than one
FAIR_SEQUENCE_KEY = "llm:fair:{queue}:seq"  # counter giving jobs their place at the end of a line
WEBHOOK_DELIVERY_KEY = "llm:webhook:{delivery_id}"  # JSON of one webhook event still being delivered
WEBHOOK_DUE_KEY = "llm:webhooks:due"  # sorted set: delivery ids by the Unix time their next attempt is due
WEBHOOK_STARTED_OPEN_KEY = "llm:webhooks:job:{job_id}:started"  # set: the job's `started` deliveries not finished
WEBHOOK_PARKED_KEY = "llm:webhooks:job:{job_id}:parked"  # set: its `completed` deliveries waiting for those
BATCH_KEY = "llm:batch:{batch_id}"  # JSON of the batch (see core/batches/model.py); expires once it completes
BATCH_STATS_KEY = "llm:batch:{batch_id}:stats"  # hash: jobs per status, finished, completion_tokens, times
BATCH_JOBS_KEY = "llm:batch:{batch_id}:jobs"  # list: the batch's job ids in input order
BATCH_OWNER_INDEX_KEY = "llm:batches:owner:{owner}"  # sorted set: batch ids by submission sequence
BATCH_SEQUENCE_KEY = "llm:batches:seq"
# Sorted set: "<owner index key>|<id>" by the Unix time that id's record expires, so listings shed it then.
EXPIRING_INDEX_ENTRIES_KEY = "llm:index:expiring"
IDEMPOTENCY_KEY = "llm:idempotency:{owner}:{key_hash}"  # JSON {job_id, body_hash}; expires after 24 h
RUNNING_INDEX_KEY = "llm:jobs:running"  # set: ids of running jobs, for the reconciler
QUEUED_INDEX_KEY = "llm:jobs:queued"  # sorted set: ids of queued jobs by the Unix time they were (re)queued
CANCEL_KEY = "llm:job:{job_id}:cancel"  # exists while a cancel of a running job is pending
OPEN_BATCHES_KEY = "llm:batches:open"  # set: batches not completed yet, swept by the reconciler
QUEUED_PER_OWNER_KEY = "llm:jobs:queued-per-owner"  # hash: owner -> jobs queued now, moved by every transition
WAIT_SLOTS_KEY = "llm:waits:owner:{owner}"  # sorted set: the owner's sync waits in flight by when each lapses
STREAM_SLOTS_KEY = "llm:streams:owner:{owner}"  # sorted set: the owner's open event streams by when each lapses
RATE_LIMIT_KEY_PREFIX = "llm:ratelimit"  # flask-limiter's per-key request counters start with this
# Metrics (core/metrics/service.py, core/metrics/history.py). Counters and histograms never expire: like a
# Prometheus counter they only grow, and a scraper reads a reset (Redis emptied) as a restart.
METRICS_COUNTERS_KEY = "llm:metrics:counters"  # hash: "<counter>" or "<counter>:<label>" -> running total
METRICS_HISTOGRAM_KEY = "llm:metrics:histogram:{name}"  # hash: bucket bound ("+Inf" last) -> count, "sum", "count"
METRICS_HISTORY_KEY = "llm:metrics:history"  # list: JSON samples, oldest first, trimmed to METRICS_HISTORY_SECONDS
# Exists for one sampling period once a sampler has taken that period's sample (SET NX), so several ops workers
# never add two samples for one period; expires after two periods.
METRICS_SAMPLE_CLAIM_KEY = "llm:metrics:history:claim:{slot}"
# OpenAI-compatible files and batches (core/openai/files.py, core/openai/batch_store.py).
OPENAI_FILE_KEY = "llm:openai:file:{file_id}"  # JSON of a file's record; expires OPENAI_FILE_TTL after its upload
OPENAI_FILE_CONTENT_KEY = "llm:openai:file:{file_id}:content"  # list: the file's text in chunks; expires with it
OPENAI_FILE_OWNER_INDEX_KEY = "llm:openai:files:owner:{owner}"  # sorted set: file ids by upload sequence
OPENAI_FILE_SEQUENCE_KEY = "llm:openai:files:seq"
# An owner's uploaded files as counted against its quotas (core/limits/file_quota.py): a sorted set of file ids by
# the Unix time each stops counting (an upload in progress: a short lease renewed by each write; a stored file: its
# expiry), and a hash of file id -> bytes. Entries past their time are shed whenever the quota is read; both keys expire
# OPENAI_FILE_TTL after the owner's last upload.
OPENAI_FILE_USAGE_KEY = "llm:openai:files:usage:{owner}"
OPENAI_FILE_USAGE_BYTES_KEY = "llm:openai:files:usage:{owner}:bytes"
# JSON of an OpenAI batch (over the native batch of the same id); kept while it runs, then as long as its files
OPENAI_BATCH_KEY = "llm:openai:batch:{batch_id}"
OPENAI_BATCH_OWNER_INDEX_KEY = "llm:openai:batches:owner:{owner}"  # sorted set: OpenAI batch ids by sequence
OPENAI_BATCH_SEQUENCE_KEY = "llm:openai:batches:seq"
# Held (a few minutes at most) by the one API process writing a finished batch's output files.
OPENAI_BATCH_FINALIZING_KEY = "llm:openai:batch:{batch_id}:finalizing"
# Bumped before each WAIT (core/redis/replication.py): WAIT counts the replicas holding a connection's last write,
# so a confirmation first writes on its own connection. Never expires; one integer.
REPLICATION_MARK_KEY = "llm:replication:mark"
