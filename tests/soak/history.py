"""What the soak's clients saw: every answer, every accepted id, every idempotency key, every first sight of a
finished job; shared by the client threads, hence one lock."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sighting:
    """A finished job as a client first saw it (a poll, a synchronous answer, the end of a stream)."""

    status: str
    text: str | None
    seen_by: str


@dataclass
class History:
    """The soak's record of the outside view; the checks compare it with what the service stored and did."""

    statuses: collections.Counter = field(default_factory=collections.Counter)  # (route, status) -> answers
    connection_errors: collections.Counter = field(default_factory=collections.Counter)  # route -> count
    retries: collections.Counter = field(default_factory=collections.Counter)  # route -> retried sends
    bad_answers: list[dict] = field(default_factory=list)  # 5xx that are not a 503 with Retry-After, HTML errors
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> the client kind that was told of it
    batches: dict[str, dict] = field(default_factory=dict)  # batch id -> {"lines": n, "webhook": bool}
    keyed: dict[tuple[str, str], set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    key_sends: collections.Counter = field(default_factory=collections.Counter)  # (route, key) -> sends
    sightings: dict[str, Sighting] = field(default_factory=dict)
    cancels: dict[str, int] = field(default_factory=dict)  # job id -> the cancel's answer (200, 202, 409)
    # The last outcome of each tagged request (its tag is in the prompt): an HTTP status or an exception's name.
    outcomes: dict[str, str] = field(default_factory=dict)
    webhook_jobs: set[str] = field(default_factory=set)
    client_failures: list[str] = field(default_factory=list)  # a client that could not read an answer
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, route: str, status: int, detail: dict | None = None) -> None:
        with self._lock:
            self.statuses[(route, status)] += 1
            if detail is not None:
                self.bad_answers.append({"route": route, "status": status, **detail})

    def connection_error(self, route: str) -> None:
        with self._lock:
            self.connection_errors[route] += 1

    def retried(self, route: str) -> None:
        with self._lock:
            self.retries[route] += 1

    def sent_with_key(self, route: str, key: str) -> None:
        with self._lock:
            self.key_sends[(route, key)] += 1

    def accepted(self, job_id: str, kind: str, key: tuple[str, str] | None = None) -> None:
        with self._lock:
            self.jobs.setdefault(job_id, kind)
            if key is not None:
                self.keyed[key].add(job_id)

    def accepted_batch(self, batch_id: str, lines: int, webhook: bool, key: tuple[str, str] | None) -> None:
        with self._lock:
            self.batches.setdefault(batch_id, {"lines": lines, "webhook": webhook})
            if key is not None:
                self.keyed[key].add(batch_id)

    def saw_finished(self, job_id: str, status: str, text: str | None, seen_by: str) -> None:
        with self._lock:
            self.sightings.setdefault(job_id, Sighting(status, text, seen_by))

    def canceled(self, job_id: str, status: int) -> None:
        with self._lock:
            self.cancels[job_id] = status

    def outcome(self, tag: str, outcome: str) -> None:
        with self._lock:
            self.outcomes[tag] = outcome

    def client_failed(self, client: str, error: Exception) -> None:
        with self._lock:
            self.client_failures.append(f"{client}: {type(error).__name__}: {error}")

    def with_webhook(self, job_id: str) -> None:
        with self._lock:
            self.webhook_jobs.add(job_id)
