"""The ops worker's parts in-process: a store over a Redis of the test's own, a publisher that records."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from core.jobs.store import JobStore, connect


@dataclass
class RecordingPublisher:
    """JobPublisher's two calls, recorded; `waiting` is the broker's queue depth."""

    waiting: int = 0
    published: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, job_id: str, priority: str = "normal") -> None:
        self.published.append((job_id, priority))

    def queue_depth(self, _client) -> int:
        return self.waiting


@pytest.fixture
def own_store(own_redis) -> JobStore:
    return JobStore(connect(own_redis.url), job_ttl_s=3600, queue="unit-gpu")


@dataclass
class Receiver:
    url: str
    port: int
    requests: list[tuple[dict, bytes]]
    answers: list[int]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback: records each POST and answers the next status of `answers` (else 200)."""
    requests: list[tuple[dict, bytes]] = []
    answers: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests.append((dict(self.headers), body))
            self.send_response(answers.pop(0) if answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    yield Receiver(f"http://127.0.0.1:{port}/hook", port, requests, answers)
    server.shutdown()
    server.server_close()
