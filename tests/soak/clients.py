"""The soak's clients, one thread per kind, each sending its kind of request until told to stop: plain jobs
(then polled), synchronous generate, OpenAI chat (whole and streamed), small batches, jobs with webhooks, and jobs
canceled soon after. Some requests carry an Idempotency-Key, and some of those are sent twice on purpose, as a
client whose answer was cut off would: both answers must name the same job."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable

import requests

from tests.soak.calls import call, outcome_of
from tests.soak.history import History

# A chance per request; the numbers only shape the mix.
KEYED_SHARE = 0.5
SENT_TWICE_SHARE = 0.4
PACE_S = (0.3, 1.2)  # between one client's requests: a steady trickle a loaded 2-core machine keeps up with
BATCH_LINES = (2, 4)
# Every route the soak sends an Idempotency-Key to; the summary names each that ignores it.
KEYED_ROUTES = ("POST /jobs", "POST /batches", "POST /v1/generate", "POST /v1/chat/completions")
# Those that must honour it (a key that makes two jobs there is a violation): all of them, as docs/api.md promises
# (/v1/generate's and the OpenAI routes' cut-off callers are told to retry with one).
KEY_HONOURING_ROUTES = KEYED_ROUTES


def small_job(tag: str, rng: random.Random) -> dict:
    """A short generation whose prompt carries the request's tag, so a stored job can be traced to its request."""
    return {"prompt": f"{tag} một câu ngắn", "max_tokens": rng.randint(4, 24), "ignore_eos": True}


# A schema the demo model completes in a few tokens: a chat asking for it that ends with `stop` must parse.
SMALL_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
    },
}


def chat_body(tag: str, rng: random.Random, stream: bool) -> dict:
    """A chat, some asking for what batch users reach for: a JSON schema, logprobs, and (unstreamed) n = 2."""
    body = {
        "model": "soak",
        "messages": [{"role": "user", "content": f"{tag} xin chào"}],
        "max_tokens": rng.randint(4, 24),
        "temperature": 0,
    }
    feature = rng.random()
    if feature < 0.25:
        body |= {"response_format": SMALL_SCHEMA, "max_tokens": 32}
    elif feature < 0.5:
        body |= {"logprobs": True, "top_logprobs": 2}
        if not stream:
            body["n"] = 2
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


class Clients:
    """Every kind of client, sharing one History; `start()` runs them, `stop()` lets each finish its request."""

    def __init__(self, url: str, history: History, webhook_url: str, seed: int) -> None:
        self.url = url
        self.history = history
        self.webhook_url = webhook_url
        self.seed = seed
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count()
        self._number_lock = threading.Lock()

    def tag(self, kind: str) -> str:
        with self._number_lock:
            return f"soak-{kind}-{next(self._numbers)}"

    def start(self) -> None:
        kinds: dict[str, Callable[[requests.Session, random.Random], None]] = {
            "jobs": self.plain_job,
            "generate": self.generate,
            "chat": self.chat,
            "chat-stream": self.chat_stream,
            "batch": self.batch,
            "webhook": self.webhook_job,
            "cancel": self.canceled_job,
        }
        for index, (kind, send_one) in enumerate(kinds.items()):
            thread = threading.Thread(target=self._loop, args=(send_one, index), name=f"soak-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
        poller = threading.Thread(target=self._poll, name="soak-poller", daemon=True)
        poller.start()
        self._poller = poller

    def _loop(self, send_one: Callable[[requests.Session, random.Random], None], index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        with requests.Session() as session:
            while not self.stopping.is_set():
                try:
                    send_one(session, rng)
                except Exception as error:  # noqa: BLE001 - an answer of a shape the client can't read is a finding
                    self.history.client_failed(send_one.__name__, error)
                self.stopping.wait(rng.uniform(*PACE_S))

    def stop(self, timeout_s: float) -> None:
        """No new requests; wait for those in flight (a synchronous one may wait out a paused worker)."""
        self.stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def still_running(self) -> list[str]:
        return [thread.name for thread in self._threads if thread.is_alive()]

    # Submissions: one client each.

    def _keyed(self, rng: random.Random) -> str | None:
        return uuid.uuid4().hex if rng.random() < KEYED_SHARE else None

    def _submit(
        self, session: requests.Session, rng: random.Random, route: str, path: str, body: dict, kind: str, tag: str
    ) -> tuple[requests.Response | Exception, str | None]:
        """POST a job-making request (again, with the same key, when it is sent twice on purpose); returns the last
        answer and the job id it named."""
        key = self._keyed(rng)
        headers = {"Idempotency-Key": key} if key else {}
        sends = 2 if key and rng.random() < SENT_TWICE_SHARE else 1
        answer: requests.Response | Exception = RuntimeError("not sent")
        job_id = None
        for _ in range(sends):
            if key:
                self.history.sent_with_key(route, key)
            answer = call(session, self.history, route, "POST", f"{self.url}{path}", repeatable=bool(key),
                          json=body, headers=headers)  # fmt: skip
            named = self._named_job(answer)
            if named is not None:
                job_id = named
                self.history.accepted(named, kind, (route, key) if key else None)
        self.history.outcome(tag, outcome_of(answer) if job_id is None else "named")
        return answer, job_id

    @staticmethod
    def _named_job(answer: requests.Response | Exception) -> str | None:
        """The job an answer names: a 2xx's id (OpenAI ids carry it after their prefix), or the job of a refusal
        that came after it was stored (a 504's or 503's `Location`, which OpenAI-shaped errors carry too)."""
        if not isinstance(answer, requests.Response):
            return None
        location = answer.headers.get("Location", "")
        if answer.status_code >= 500 and location.startswith("/jobs/"):
            return location.removeprefix("/jobs/")
        try:
            body = answer.json()
        except ValueError:
            return None
        if 200 <= answer.status_code < 300:
            return str(body["id"]).rsplit("-", 1)[-1]
        if answer.status_code == 504:
            return body.get("error", {}).get("job_id")
        return None

    def plain_job(self, session: requests.Session, rng: random.Random) -> None:
        tag = self.tag("jobs")
        self._submit(session, rng, "POST /jobs", "/jobs", small_job(tag, rng), "jobs", tag)

    def generate(self, session: requests.Session, rng: random.Random) -> None:
        tag = self.tag("generate")
        answer, job_id = self._submit(
            session, rng, "POST /v1/generate", "/v1/generate", small_job(tag, rng), "generate", tag
        )
        if job_id and isinstance(answer, requests.Response) and answer.status_code == 200:
            self.history.saw_finished(job_id, "succeeded", answer.json()["text"], "generate")

    def chat(self, session: requests.Session, rng: random.Random) -> None:
        tag = self.tag("chat")
        route = "POST /v1/chat/completions"
        body = chat_body(tag, rng, False)
        answer, job_id = self._submit(session, rng, route, "/v1/chat/completions", body, "chat", tag)
        if job_id and isinstance(answer, requests.Response) and answer.status_code == 200:
            choices = answer.json()["choices"]
            self.history.saw_finished(job_id, "succeeded", choices[0]["message"]["content"], "chat")
            self._check_features(body, choices)

    def _check_features(self, body: dict, choices: list[dict]) -> None:
        """What a chat asked for is in its answer: n choices, logprobs per choice, JSON that parses when it ended
        with `stop`; anything else is a finding."""
        if len(choices) != body.get("n", 1):
            self.history.client_failed("chat", ValueError(f"{len(choices)} choices for n={body.get('n', 1)}"))
        for choice in choices:
            if body.get("logprobs") and not (choice.get("logprobs") or {}).get("content"):
                self.history.client_failed("chat", ValueError("logprobs asked, none in the answer"))
            if "response_format" in body and choice["finish_reason"] == "stop":
                try:
                    json.loads(choice["message"]["content"])
                except ValueError as error:
                    self.history.client_failed("chat", error)

    def chat_stream(self, session: requests.Session, rng: random.Random) -> None:
        """A streamed chat completion, read to its `[DONE]`: the text of its chunks is the job's text."""
        tag = self.tag("chat-stream")
        route = "POST /v1/chat/completions (stream)"
        answer = call(session, self.history, route, "POST", f"{self.url}/v1/chat/completions", repeatable=False,
                      json=chat_body(tag, rng, True), stream=True)  # fmt: skip
        if not isinstance(answer, requests.Response) or answer.status_code != 200:
            named = self._named_job(answer)  # a refusal after the job was stored names it (Location)
            if named is not None:
                self.history.accepted(named, "chat-stream")
            self.history.outcome(tag, "named" if named else outcome_of(answer))
            return
        job_id, parts, finished, failed = None, [], False, False
        try:
            for line in answer.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                data = line[len(b"data: ") :]
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    failed = True
                    continue
                if job_id is None:
                    job_id = chunk["id"].rsplit("-", 1)[-1]
                    self.history.accepted(job_id, "chat-stream")
                for choice in chunk.get("choices", []):
                    parts.append(choice.get("delta", {}).get("content") or "")
                    finished = finished or choice.get("finish_reason") is not None
        except requests.RequestException:
            self.history.connection_error(route)
        finally:
            answer.close()
        self.history.outcome(tag, "named" if job_id else "200 without a chunk")
        if job_id and finished and not failed:
            self.history.saw_finished(job_id, "succeeded", "".join(parts), "chat-stream")

    def batch(self, session: requests.Session, rng: random.Random) -> None:
        """A batch of a few lines as JSONL, some with a webhook for `batch.completed`, some keyed."""
        lines = [small_job(self.tag("batch"), rng) for _ in range(rng.randint(*BATCH_LINES))]
        jsonl = "".join(json.dumps({"custom_id": f"line-{i}", "body": body}) + "\n" for i, body in enumerate(lines))
        webhook = rng.random() < 0.3
        params = {"webhook": self.webhook_url} if webhook else {}
        key = self._keyed(rng)
        headers = {"Content-Type": "application/jsonl"} | ({"Idempotency-Key": key} if key else {})
        sends = 2 if key and rng.random() < SENT_TWICE_SHARE else 1
        batch_id = None
        answer: requests.Response | Exception = RuntimeError("not sent")
        for _ in range(sends):
            if key:
                self.history.sent_with_key("POST /batches", key)
            answer = call(session, self.history, "POST /batches", "POST", f"{self.url}/batches", repeatable=bool(key),
                          data=jsonl.encode(), params=params, headers=headers)  # fmt: skip
            if isinstance(answer, requests.Response) and answer.status_code == 202:
                batch_id = answer.json()["id"]
                self.history.accepted_batch(batch_id, len(lines), webhook, ("POST /batches", key) if key else None)
        for body in lines:
            self.history.outcome(body["prompt"].split()[0], "named" if batch_id else outcome_of(answer))

    def webhook_job(self, session: requests.Session, rng: random.Random) -> None:
        tag = self.tag("webhook")
        events = ["started", "completed"] if rng.random() < 0.3 else ["completed"]
        body = small_job(tag, rng) | {"webhook": self.webhook_url, "webhook_events": events}
        _, job_id = self._submit(session, rng, "POST /jobs", "/jobs", body, "webhook", tag)
        if job_id:
            self.history.with_webhook(job_id)

    def canceled_job(self, session: requests.Session, rng: random.Random) -> None:
        """A longer job canceled a moment later: queued, running, or already done."""
        tag = self.tag("cancel")
        body = {"prompt": f"{tag} một câu dài", "max_tokens": rng.randint(40, 160), "ignore_eos": True}
        _, job_id = self._submit(session, rng, "POST /jobs", "/jobs", body, "cancel", tag)
        if job_id is None:
            return
        time.sleep(rng.uniform(0, 1.5))
        route = "POST /jobs/<id>/cancel"
        answer = call(session, self.history, route, "POST", f"{self.url}/jobs/{job_id}/cancel", repeatable=True)
        if isinstance(answer, requests.Response) and answer.status_code in (200, 202, 409):
            self.history.canceled(job_id, answer.status_code)

    # Polling: the first sight of each finished job.

    def _poll(self) -> None:
        with requests.Session() as session:
            while not self.stopping.is_set():
                self.poll_once(session)
                self.stopping.wait(1.0)

    def poll_once(self, session: requests.Session) -> int:
        """GET every accepted job not yet seen finished; returns how many are still unfinished."""
        with self.history._lock:
            unseen = [job_id for job_id in self.history.jobs if job_id not in self.history.sightings]
        left = 0
        for job_id in unseen:
            answer = call(session, self.history, "GET /jobs/<id>", "GET", f"{self.url}/jobs/{job_id}",
                          repeatable=True)  # fmt: skip
            if not isinstance(answer, requests.Response) or answer.status_code != 200:
                left += 1
                continue
            job = answer.json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                self.history.saw_finished(job_id, job["status"], (job.get("output") or {}).get("text"), "poll")
            else:
                left += 1
        return left
