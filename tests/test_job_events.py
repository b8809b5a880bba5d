"""`GET /jobs/<id>/events` end to end: gunicorn (gevent) API -> Redis Streams <- the real worker with the demo model,
default MAX_BATCH_SIZE. Late subscribers, resuming by Last-Event-ID, Vietnamese text never split mid-character,
stop strings, and five hundred subscribers at once while /healthz answers."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import redis
import requests

from api.app import create_app
from tests.conftest import unconsumed_queue_name
from tests.polling import wait_for_terminal
from tests.sse import SseEvent, events_of, parse_block, text_of

# Greedy on the demo model, this prompt's answer holds two-byte and three-byte characters ("ȡ", "ỡ") that the
# model emits one byte token at a time, and no broken sequence in the final text.
VIETNAMESE = {"prompt": "mặc áo", "max_tokens": 8, "temperature": 0}
SUBSCRIBERS = 500


def submit(base_url: str, body: dict) -> str:
    response = requests.post(f"{base_url}/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def subscribe(base_url: str, job_id: str, **kwargs) -> list[SseEvent]:
    """Every event of one connection, read to its end (the server ends it after `completed`)."""
    with requests.get(f"{base_url}/jobs/{job_id}/events", stream=True, timeout=60, **kwargs) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return list(events_of(response.iter_content(chunk_size=None)))


def check_complete(events: list[SseEvent], job: dict) -> None:
    """Status events in order, token deltas that rebuild the text exactly, and the job object last."""
    assert events[-1].event == "completed" and events[-1].data == job
    statuses = [event.data["status"] for event in events if event.event == "status"]
    assert statuses[-2:] == ["running", job["status"]], statuses
    assert text_of(events) == job["output"]["text"]
    without_id = [event for event in events if event.event in ("status", "token") and not event.id]
    # Only a subscriber that came before the job's first run hears, first, that it is queued (nothing written yet).
    if without_id:
        assert without_id == [events[0]] and events[0].data == {"status": "queued"}, without_id


def test_late_subscriber_gets_every_token_and_a_reconnect_gets_the_rest_exactly_once(api_server):
    base = api_server.base_url
    batched = submit(base, {"prompt": "Kể một câu chuyện", "max_tokens": 40, "ignore_eos": True})
    # A seed runs in the one-at-a-time lane (the sequential engine), with a stop string held back until final.
    seeded = submit(base, {"prompt": "Hà Nội", "max_tokens": 40, "seed": 7, "stop": ["e"]})
    for job_id in (batched, seeded):
        job = wait_for_terminal(base, job_id)
        assert job["status"] == "succeeded", job
        events = subscribe(base, job_id)
        check_complete(events, job)
        tokens = [event for event in events if event.event == "token"]
        assert tokens and job["output"]["text"]

        half = len(events) // 2
        resumed = subscribe(base, job_id, headers={"Last-Event-ID": events[half].id})
        assert resumed == events[half + 1 :]  # no gap, no repeat
        by_query = subscribe(base, job_id, params={"last_event_id": events[1].id})
        assert by_query == events[2:]
        after_last = subscribe(base, job_id, headers={"Last-Event-ID": events[-2].id})
        assert after_last == events[-1:]  # only the job again

    seeded_job = wait_for_terminal(base, seeded)
    assert "e" not in seeded_job["output"]["text"]
    bad = requests.get(f"{base}/jobs/{batched}/events", headers={"Last-Event-ID": "yesterday"}, timeout=5)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "last_event_id"
    assert requests.get(f"{base}/jobs/{'0' * 32}/events", timeout=5).status_code == 404


def test_a_live_vietnamese_stream_never_splits_a_character(api_server):
    base = api_server.base_url
    job_id = submit(base, VIETNAMESE)
    with requests.get(f"{base}/jobs/{job_id}/events", stream=True, timeout=60) as response:
        raw = b""
        for chunk in response.iter_content(chunk_size=None):
            raw += chunk
    blocks = [block for block in raw.split(b"\n\n") if block]
    events = [parse_block(block) for block in blocks]  # strict UTF-8: a split sequence would raise here
    job = wait_for_terminal(base, job_id)
    check_complete(events, job)
    tokens = [event.text for event in events if event.event == "token"]
    assert all("\ufffd" not in text for text in tokens), tokens
    multi_byte = [char for char in "".join(tokens) if len(char.encode()) > 1]
    assert len(multi_byte) >= 2, tokens  # the prompt did produce multi-byte characters


def test_five_hundred_subscribers_on_running_jobs_while_healthz_answers(api_server, redis_server):
    base = api_server.base_url
    job_ids = [submit(base, {"prompt": f"Người nghe số {n}", "max_tokens": 120, "ignore_eos": True}) for n in range(8)]
    host, port = urlsplit(base).hostname, urlsplit(base).port
    redis_client = redis.Redis.from_url(redis_server.url)
    # The session's Redis also holds the idle pooled connections of the tests run before this one: what counts is
    # what the subscribers add.
    connections_before = int(redis_client.info("clients")["connected_clients"])
    selector = selectors.DefaultSelector()
    bodies: dict[socket.socket, bytearray] = {}
    watched: dict[socket.socket, str] = {}
    for n in range(SUBSCRIBERS):
        # HTTP/1.0: the answer is the raw event stream, closed by the server after `completed`.
        connection = socket.create_connection((host, port), timeout=30)
        job_id = job_ids[n % len(job_ids)]
        connection.sendall(f"GET /jobs/{job_id}/events HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ)
        bodies[connection], watched[connection] = bytearray(), job_id

    health: list[int | str] = []
    slowest = [0.0]
    stop_probing = threading.Event()

    def probe() -> None:
        while not stop_probing.is_set():
            started = time.monotonic()
            try:
                health.append(requests.get(f"{base}/healthz", timeout=30).status_code)  # a generous bound
            except requests.RequestException as error:
                health.append(repr(error))
            slowest[0] = max(slowest[0], time.monotonic() - started)
            time.sleep(0.2)

    prober = threading.Thread(target=probe)
    prober.start()
    connections_seen = []
    deadline = time.monotonic() + 300
    try:
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                chunk = key.fileobj.recv(65536)
                if chunk:
                    bodies[key.fileobj] += chunk
                else:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
            connections_seen.append(int(redis_client.info("clients")["connected_clients"]))
    finally:
        stop_probing.set()
        prober.join()
    assert not selector.get_map(), f"{len(selector.get_map())} subscribers never got their stream's end"

    jobs = {job_id: wait_for_terminal(base, job_id) for job_id in job_ids}
    for connection, body in bodies.items():
        head, _, stream = bytes(body).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head[:200]
        events = [parse_block(block) for block in stream.split(b"\n\n") if block]
        check_complete([event for event in events if event.event], jobs[watched[connection]])
    assert health and set(health) == {200}, health
    # Subscribers are woken by each API process's one subscription, not by a blocked read of their own.
    added = max(connections_seen) - connections_before
    print(f"Redis connections added while {SUBSCRIBERS} subscribers followed: at most {added}; ")
    print(f"{len(health)} /healthz probes meanwhile, the slowest answered in {slowest[0]:.2f} s")
    assert added < SUBSCRIBERS // 5


@pytest.fixture
def keyed_app(make_settings, request):
    settings = make_settings(
        gpu_queue=unconsumed_queue_name(request), api_keys=["key-a", "key-b"], sse_keepalive_seconds=0.2
    )
    return create_app(settings)


def test_a_queued_job_is_followed_with_keep_alives_until_its_cancel_ends_the_stream(keyed_app):
    client = keyed_app.test_client()
    owner, other = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}
    job_id = client.post("/jobs", json={"prompt": "x", "max_tokens": 2}, headers=owner).get_json()["id"]
    assert client.get(f"/jobs/{job_id}/events", headers=other).status_code == 404
    assert client.get(f"/jobs/{job_id}/events").status_code == 401

    response = client.get(f"/jobs/{job_id}/events", headers=owner, buffered=False)
    chunks = iter(response.response)
    first = parse_block(next(chunks).rstrip(b"\n"))
    assert (first.event, first.id, first.data) == ("status", None, {"status": "queued"})  # nothing written yet
    assert next(chunks) == b": keep-alive\n\n"  # a queued job's stream stays open, and says so
    assert client.post(f"/jobs/{job_id}/cancel", headers=owner).status_code == 200
    rest = list(events_of(chunks))  # the cancel's entry ends the stream
    events = [event for event in rest if event.event]
    assert [(event.event, event.id) for event in events] == [("status", None), ("completed", None)]
    assert events[0].data == {"status": "canceled"} and events[1].data["status"] == "canceled"
    assert rest[-1].event == "completed"
