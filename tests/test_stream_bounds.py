"""Long-lived requests under one key's pressure, over real HTTP to gunicorn's gevent workers on the tests' Redis:
the per-key cap on event streams (and on streamed completions), the process's reserve of connections for
/healthz and short calls, a stream's lifetime and its resumption, the followers' pool under a burst, and the API's
Redis pools under a thousand short chat calls at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from api.app import create_app
from core.jobs.store import JobStore, connect
from core.limits.stream_slots import StreamSlots
from core.limits.wait_slots import WaitSlots
from core.owners.ids import owner_id_for_key
from core.settings import Settings
from tests.conftest import HttpServer, WorkerProcess, service_env, start_api_server, stop_process, unconsumed_queue_name
from tests.polling import poll_until
from tests.raw_http import RawAnswer, open_request, read_all, read_all_of, read_head
from tests.sse import events_of, parse_block
from tests.test_deployment_files import image_command

ANSWER_WITHIN_S = 10  # a liveness bound, not a timing target: the machine is shared and slow at times
LONG_WAIT_S = 120
CHAT = {"messages": [{"role": "user", "content": "Xin chào"}], "max_tokens": 1}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def queued_api(request, redis_server, demo_model_dir: Path, tmp: Path, keys: list[str], **extra) -> HttpServer:
    """The API on a queue no worker reads: its jobs stay queued, so streams and waits on them stay open."""
    connections = extra.pop("worker_connections", 1000)
    env = service_env(
        redis_server.url,
        demo_model_dir,
        tmp / "logs",
        GPU_QUEUE=unconsumed_queue_name(request),
        API_KEYS=",".join(keys),
        SYNC_WAIT_SECONDS=str(LONG_WAIT_S),
        SSE_KEEPALIVE_SECONDS="0.5",  # a client that left is noticed at the next keep-alive
        API_WORKER_CONNECTIONS=str(connections),
        **extra,
    )
    return start_api_server(env, tmp / "gunicorn.out", workers=1, worker_connections=connections)


def submit(base_url: str, key: str) -> str:
    response = requests.post(f"{base_url}/jobs", json={"prompt": "x"}, headers=auth(key), timeout=ANSWER_WITHIN_S)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def cancel_queued(base_url: str, key: str) -> None:
    page = requests.get(
        f"{base_url}/jobs", params={"status": "queued", "limit": 100}, headers=auth(key), timeout=ANSWER_WITHIN_S
    ).json()
    for job in page["data"]:
        requests.post(f"{base_url}/jobs/{job['id']}/cancel", headers=auth(key), timeout=ANSWER_WITHIN_S)


def assert_busy(answer: RawAnswer | None, error_type: str, openai: bool = False) -> dict:
    """A refusal answered at once with its status's JSON error and a Retry-After."""
    assert answer is not None, "a refused request was left hanging"
    assert int(answer.headers["retry-after"]) >= 1, answer
    error = answer.json()["error"]
    assert (error["code"] if openai else error["type"]) == error_type, error
    return error


def test_streams_past_the_per_key_cap_get_429_and_a_closed_stream_gives_its_slot_back(
    request, redis_server, demo_model_dir, tmp_path
):
    server = queued_api(
        request,
        redis_server,
        demo_model_dir,
        tmp_path,
        ["cap-a", "cap-b"],
        MAX_STREAMS_PER_KEY="3",
        MAX_WAITS_PER_KEY="2",
    )
    base, owner = server.base_url, owner_id_for_key("cap-a")
    slots = StreamSlots(connect(redis_server.url), limit=1, max_stream_s=1)
    opened = []
    try:
        job_a, job_b = submit(base, "cap-a"), submit(base, "cap-b")
        opened = [open_request(base, "GET", f"/jobs/{job_a}/events", headers=auth("cap-a")) for _ in range(3)]
        assert [read_head(connection).status for connection in opened] == [200] * 3
        refused = read_all(open_request(base, "GET", f"/jobs/{job_a}/events", headers=auth("cap-a")))
        assert refused.status == 429
        assert "MAX_STREAMS_PER_KEY" in assert_busy(refused, "too_many_requests")["message"]
        other = open_request(base, "GET", f"/jobs/{job_b}/events", headers=auth("cap-b"))
        assert read_head(other).status == 200  # another key's streams are its own
        opened.append(other)
        assert slots.in_flight(owner) == 3

        opened.pop(0).close()  # the server notices at its next keep-alive and gives the slot back
        poll_until(lambda: slots.in_flight(owner), lambda n: n == 2, 30, "the closed stream's slot given back")
        again = open_request(base, "GET", f"/jobs/{job_a}/events", headers=auth("cap-a"))
        assert read_head(again).status == 200
        opened.append(again)

        # A streamed completion holds a wait slot for as long as it streams: MAX_WAITS_PER_KEY bounds them.
        streamed = {**CHAT, "stream": True}
        chats = [open_request(base, "POST", "/v1/chat/completions", headers=auth("cap-a"), body=streamed)]
        chats.append(open_request(base, "POST", "/v1/chat/completions", headers=auth("cap-a"), body=streamed))
        assert [read_head(connection).status for connection in chats] == [200, 200]
        opened += chats
        third = read_all(open_request(base, "POST", "/v1/chat/completions", headers=auth("cap-a"), body=streamed))
        assert third.status == 429
        assert "MAX_WAITS_PER_KEY" in assert_busy(third, "too_many_requests", openai=True)["message"]
        store = JobStore(connect(redis_server.url), job_ttl_s=3600)
        assert store.queued_count(owner) == 3  # the first job and the two streaming ones: none for the 429
    finally:
        for connection in opened:
            connection.close()
        poll_until(lambda: slots.in_flight(owner), lambda n: n == 0, 30, "every stream slot given back")
        cancel_queued(base, "cap-a")
        cancel_queued(base, "cap-b")
        stop_process(server.process)


RESERVE_CONNECTIONS = 24  # gunicorn's --worker-connections for this test: a small stand-in for 1,000
RESERVED = 8  # of which long-lived requests may not take these: 16 remain for them


def test_one_key_holding_every_long_request_it_may_leaves_healthz_and_short_calls_answering(
    request, redis_server, demo_model_dir, tmp_path
):
    server = queued_api(
        request,
        redis_server,
        demo_model_dir,
        tmp_path,
        ["hog", "bystander"],
        worker_connections=RESERVE_CONNECTIONS,
        API_RESERVED_CONNECTIONS=str(RESERVED),
        MAX_STREAMS_PER_KEY="100",
        MAX_WAITS_PER_KEY="100",
    )
    base, owner = server.base_url, owner_id_for_key("hog")
    store = JobStore(connect(redis_server.url), job_ttl_s=3600)
    waits = WaitSlots(connect(redis_server.url), limit=1, wait_s=LONG_WAIT_S)
    held = []
    try:
        job_id = submit(base, "hog")
        watch = ("GET", f"/jobs/{job_id}/events", None)
        generate = ("POST", "/v1/generate", {"prompt": "x", "max_tokens": 1})
        chat = ("POST", "/v1/chat/completions", {**CHAT, "stream": True})

        def send(kind: tuple) -> object:
            method, path, body = kind
            return open_request(base, method, path, headers=auth("hog"), body=body)

        # Every long-lived request the process may serve: 6 event streams, 5 waits, 5 streamed completions.
        held = [send(watch) for _ in range(6)] + [send(chat) for _ in range(5)]
        assert [read_head(connection).status for connection in held] == [200] * 11
        held += [send(generate) for _ in range(5)]
        poll_until(lambda: waits.in_flight(owner), lambda n: n == 10, 30, "the ten waits in flight")
        # A wait takes its slot before its job is stored: the jobs may land a moment after the slots.
        queued = poll_until(lambda: store.queued_count(owner), lambda n: n == 11, 30, "the eleven jobs queued")

        # More than the connections gunicorn takes: each is refused at once, the connection given back.
        extra = [send(watch) for _ in range(6)] + [send(generate) for _ in range(3)] + [send(chat) for _ in range(3)]
        answers = read_all_of(extra, timeout_s=60)
        for answer in answers[:9]:
            assert answer is not None and answer.status == 503, answer
            assert_busy(answer, "server_busy")
        for answer in answers[9:]:
            assert answer is not None and answer.status == 503, answer
            assert_busy(answer, "server_busy", openai=True)
        assert store.queued_count(owner) == queued  # a refused call made no job

        for _ in range(5):
            assert requests.get(f"{base}/healthz", timeout=ANSWER_WITHIN_S).status_code == 200
            listing = requests.get(f"{base}/jobs", headers=auth("bystander"), timeout=ANSWER_WITHIN_S)
            assert listing.status_code == 200, listing.text
    finally:
        for connection in held:
            connection.close()
        cancel_queued(base, "hog")
    try:
        # With the hog's requests over, the places are free again.
        poll_until(
            lambda: read_head(open_request(base, "GET", f"/jobs/{job_id}/events", headers=auth("hog"))).status,
            lambda status: status == 200,
            30,
            "a new stream once the others closed",
        )
    finally:
        stop_process(server.process)


WORKED_KEYS = [f"burst-key-{n}" for n in range(8)]


@pytest.fixture(scope="module")
def worked_api(worker: WorkerProcess, tmp_path_factory) -> Iterator[HttpServer]:
    """The API on the session's worker, with keys, the rate limit on (its own Redis pool is in play too), and a
    one-second stream lifetime."""
    env = dict(
        worker.env,
        API_KEYS=",".join(WORKED_KEYS),
        RATE_LIMIT="1000000/minute",
        SSE_MAX_STREAM_SECONDS="1",
    )
    server = start_api_server(env, tmp_path_factory.mktemp("worked-api") / "gunicorn.out")
    yield server
    stop_process(server.process)


def test_a_stream_cut_at_its_lifetime_resumes_with_every_token_exactly_once(worked_api):
    base, key = worked_api.base_url, WORKED_KEYS[0]
    # Long enough to outlive several one-second streams on a fast CPU (the demo model's context is 2,048).
    body = {"prompt": "Kể một câu chuyện dài", "max_tokens": 1500, "ignore_eos": True}
    submitted = requests.post(f"{base}/jobs", json=body, headers=auth(key), timeout=ANSWER_WITHIN_S)
    job_id = submitted.json()["id"]
    events, cuts, last_id = [], 0, None
    for _ in range(200):  # a liveness bound on reconnections
        headers = auth(key) | ({"Last-Event-ID": last_id} if last_id else {})
        with requests.get(f"{base}/jobs/{job_id}/events", headers=headers, stream=True, timeout=60) as response:
            assert response.status_code == 200, response.text
            raw = b"".join(response.iter_content(chunk_size=None))
        blocks = [block for block in raw.split(b"\n\n") if block]
        got = [parse_block(block) for block in blocks]
        events += [event for event in got if event.event]
        if events and events[-1].event == "completed":
            break
        # Cut before the job ended: the last block is the retry hint, and the client goes on from its last id.
        assert b"\nretry: " in b"\n" + blocks[-1], blocks[-1]
        cuts += 1
        last_id = next((event.id for event in reversed(events) if event.id), last_id)
    job = requests.get(f"{base}/jobs/{job_id}", headers=auth(key), timeout=ANSWER_WITHIN_S).json()
    assert job["status"] == "succeeded", job
    print(f"{cuts} cuts over the job's {job['usage']['completion_tokens']} tokens")
    assert cuts >= 1, "the job ended within one stream's lifetime: nothing was cut"
    assert [event.event for event in events].count("completed") == 1 and events[-1].data == job
    ids = [event.id for event in events if event.id]
    assert len(ids) == len(set(ids)) and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    tokens = "".join(event.data["text"] for event in events if event.event == "token")
    assert tokens == job["output"]["text"]  # every token, exactly once


CHAT_CALLS = 1000
REDIS_STALL_MS = 1000  # below the API's Redis socket timeout (2 s): a stall, not an outage


def test_a_thousand_short_chat_calls_at_once_get_no_5xx_but_busy_503s(worked_api, redis_server):
    """Redis stalls for a second as the burst arrives (CLIENT PAUSE; a slow command or a disk stall does the
    same), so each process has hundreds of calls waiting on Redis at once, as a burst on a fast machine does:
    with redis-py's default pool those past its 100 connections were answered 503."""
    base = worked_api.base_url
    redis.Redis.from_url(redis_server.url).execute_command("CLIENT", "PAUSE", REDIS_STALL_MS, "ALL")
    connections = [
        open_request(base, "POST", "/v1/chat/completions", headers=auth(WORKED_KEYS[n % 8]), body=CHAT)
        for n in range(CHAT_CALLS)
    ]
    started = time.monotonic()
    answers = read_all_of(connections, timeout_s=600)
    took_s = time.monotonic() - started
    assert None not in answers, f"{answers.count(None)} calls got no answer"
    statuses = Counter(answer.status for answer in answers)
    kinds = Counter((answer.status, answer.json()["error"].get("code")) for answer in answers if answer.status != 200)
    print(f"{CHAT_CALLS} concurrent chat calls in {took_s:.1f} s: {dict(statuses)}; refusals: {dict(kinds)}")
    for answer in answers:
        if answer.status >= 500:
            assert answer.status == 503 and int(answer.headers["retry-after"]) >= 1, answer
            # The process's bound on long requests may refuse some; an exhausted Redis pool must not.
            assert answer.json()["error"]["code"] == "server_busy", answer
    # Only a process already serving its bound refuses, so no more than the calls beyond one process's bound are.
    busy_at_most = CHAT_CALLS - Settings(_env_file=None).max_long_requests_per_process
    assert statuses[503] <= busy_at_most and statuses[200] + statuses[429] + statuses[503] == CHAT_CALLS, statuses


def test_a_burst_finding_every_follower_connection_busy_waits_for_one(make_settings, request):
    """The followers' pool (16 connections) all taken for longer than a Redis call may last: a new stream waits
    for one instead of answering 503."""
    settings: Settings = make_settings(
        gpu_queue=unconsumed_queue_name(request), api_keys=["pool-key"], redis_socket_timeout_seconds=0.5
    )
    app = create_app(settings)
    client = app.test_client()
    job_id = client.post("/jobs", json={"prompt": "x"}, headers=auth("pool-key")).get_json()["id"]
    assert client.post(f"/jobs/{job_id}/cancel", headers=auth("pool-key")).status_code == 200
    pool = app.extensions["llm"].job_events.store.redis.connection_pool
    taken = [pool.get_connection() for _ in range(pool.max_connections)]
    answers = []

    def follow() -> None:
        response = client.get(f"/jobs/{job_id}/events", headers=auth("pool-key"))
        answers.append((response.status_code, list(events_of([response.data]))))

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(4 * settings.redis_socket_timeout_seconds)  # past the socket timeout, where the old pool gave up
    for connection in taken:
        pool.release(connection)
    follower.join(timeout=60)
    ((status, events),) = answers
    assert status == 200, events
    assert events[-1].event == "completed" and events[-1].data["status"] == "canceled"


def test_reserved_connections_must_leave_some_for_long_requests(make_settings):
    with pytest.raises(ValueError, match="API_RESERVED_CONNECTIONS must stay below API_WORKER_CONNECTIONS"):
        make_settings(api_worker_connections=100, api_reserved_connections=100)
    assert make_settings(api_worker_connections=100, api_reserved_connections=10).max_long_requests_per_process == 90


def test_the_image_takes_as_many_connections_per_api_process_as_the_settings_default(make_settings):
    """The image's command passes gunicorn's --worker-connections itself: it must be what the API reserves from."""
    command = image_command()
    assert int(command[command.index("--worker-connections") + 1]) == make_settings().api_worker_connections
