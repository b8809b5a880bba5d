"""Publishes running jobs' text deltas to their event streams from one thread, off the decoding loop.

An engine hands each job's token list to its feed (a dict assignment, no Redis, no decoding); the publisher thread
wakes, decodes what is new for every job that moved, and appends all their deltas in one pipelined round trip, at
most every FLUSH_INTERVAL_S: on a fast device several steps make one entry, so neither Redis nor the API processes
that hand entries to their followers get more than a bounded number of messages per job and second.

The runner finishes a job's feed (its last delta written) before it records the job's outcome, so the stream's
token entries always come before its terminal status.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from core.events.stream import TokenStreams
from worker.logprobs import TokenLogprob, as_records
from worker.text_deltas import TextDeltas

log = logging.getLogger("llm.worker")

# How long the runner waits for a job's last delta to be written before it records the outcome anyway.
FINISH_WAIT_S = 5.0
# The shortest time between two writes (a finishing job cuts it short): 20 entries per job and second at most,
# a delay no reader sees.
FLUSH_INTERVAL_S = 0.05
RETRY_PAUSE_S = 0.5
IDLE_WAKE_S = 1.0


class JobFeed:
    """One job's link to the publisher: the engine's `on_tokens`, and the runner's `finish`/`close`."""

    def __init__(self, publisher: TokenPublisher, job_id: str, attempt: int, deltas: TextDeltas) -> None:
        self.publisher = publisher
        self.job_id = job_id
        self.attempt = attempt
        self.deltas = deltas
        self.finished = threading.Event()
        self.final_text: str | None = None
        self.closed = False
        # A job with logprobs: the engine's logprobs so far, and how many tokens' records were published.
        self.logprobs: list[TokenLogprob] = []
        self.final_records: list[dict] = []
        self.records_sent = 0

    def on_tokens(self, tokens: list[int]) -> None:
        """Every token the job has so far (called by the engine after each step)."""
        self.publisher.note_tokens(self, tokens)

    def on_logprobs(self, logprobs: list[TokenLogprob]) -> None:
        """The logprobs of the job's tokens so far (called by the engine before `on_tokens`)."""
        self.logprobs = logprobs

    def finish(self, final_text: str, final_records: list[dict] | None = None) -> None:
        """Publish the rest of the job's final text (and of its logprob records) and wait (a bounded while) until
        all of it is written."""
        self.final_records = final_records or []
        self.publisher.note_finish(self, final_text)
        if not self.finished.wait(FINISH_WAIT_S):
            log.warning("job %s: its last text deltas were not written in %.0f s", self.job_id, FINISH_WAIT_S)
        self.close()

    def close(self) -> None:
        """Publish nothing more for this job (it failed, went back to the queue, or finished)."""
        self.publisher.forget(self)


class TokenPublisher:
    """The worker's one publisher thread and the feeds of the jobs it runs."""

    def __init__(self, streams: TokenStreams, tokenizer) -> None:
        self.streams = streams
        self.tokenizer = tokenizer
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finish_waits = threading.Event()  # a job waits for its last delta: write now
        self._last_write = 0.0
        self._latest: dict[JobFeed, list[int]] = {}  # feed -> its newest token list, not yet decoded
        self._finishing: list[JobFeed] = []
        self._unsent: dict[JobFeed, str] = {}  # deltas decoded but not written yet (Redis away): kept in order
        self._unsent_records: dict[JobFeed, list[dict]] = {}  # the logprob records that go with them
        self._feeds: set[JobFeed] = set()
        self._flushing: list[JobFeed] = []  # finished feeds whose last delta waits to be written (this thread's own)
        self._thread = threading.Thread(target=self._run, name="token-publisher", daemon=True)
        self._thread.start()

    def open(self, job_id: str, attempt: int, stops: list[str] | None) -> JobFeed:
        """A feed for one attempt of a job that is starting (Redis takes text only from the running attempt)."""
        feed = JobFeed(self, job_id, attempt, TextDeltas(self.tokenizer, stops))
        with self._lock:
            self._feeds.add(feed)
        return feed

    def note_tokens(self, feed: JobFeed, tokens: list[int]) -> None:
        with self._lock:
            if feed in self._feeds:
                self._latest[feed] = tokens
        self._wake.set()

    def note_finish(self, feed: JobFeed, final_text: str) -> None:
        with self._lock:
            if feed not in self._feeds:
                feed.finished.set()
                return
            feed.final_text = final_text
            self._finishing.append(feed)
        self._finish_waits.set()
        self._wake.set()

    def forget(self, feed: JobFeed) -> None:
        with self._lock:
            self._feeds.discard(feed)
            self._latest.pop(feed, None)
            self._unsent.pop(feed, None)
            self._unsent_records.pop(feed, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(IDLE_WAKE_S)
            pause = self._last_write + FLUSH_INTERVAL_S - time.monotonic()
            if pause > 0:
                self._finish_waits.wait(pause)  # more steps gather meanwhile
            self._finish_waits.clear()
            self._wake.clear()
            try:
                self._last_write = time.monotonic()
                if not self._publish_once():
                    threading.Event().wait(RETRY_PAUSE_S)
            except Exception:  # noqa: BLE001 - the publisher outlives any one bad step; jobs run on regardless
                log.exception("token publishing failed")

    def _publish_once(self) -> bool:
        """Decode what is new for every feed and write it all in one round trip; False when Redis refused it."""
        with self._lock:
            latest, self._latest = self._latest, {}
            finishing, self._finishing = self._finishing, []
        for feed, tokens in latest.items():
            self._add_unsent(feed, feed.deltas.update(tokens), self._records_due(feed, tokens))
        for feed in finishing:
            rest = feed.final_records[feed.records_sent :]
            feed.records_sent += len(rest)
            self._add_unsent(feed, feed.deltas.finish(feed.final_text or ""), rest)
            self._flushing.append(feed)
        with self._lock:
            unsent = {
                feed: (text, self._unsent_records[feed]) if self._unsent_records.get(feed) else text
                for feed, text in self._unsent.items()
                if feed in self._feeds
            }
        written = True
        if unsent:
            try:
                # Keyed by attempt too: a superseded attempt of a job may still run here beside its next one.
                self.streams.append_texts({(feed.job_id, feed.attempt): text for feed, text in unsent.items()})
            except redis.RedisError as error:
                log.warning("text deltas not written (kept for the next try): %s", error)
                written = False
            else:
                with self._lock:
                    for feed in unsent:
                        self._unsent.pop(feed, None)
                        self._unsent_records.pop(feed, None)
        if written:
            for feed in self._flushing:
                feed.finished.set()
            self._flushing.clear()
        return written

    def _records_due(self, feed: JobFeed, tokens: list[int]) -> list[dict]:
        """The logprob records of the tokens whose text is now all published and whose logprobs are known."""
        due = min(feed.deltas.covered, len(feed.logprobs), len(tokens))
        if due <= feed.records_sent:
            return []
        start, feed.records_sent = feed.records_sent, due
        return as_records(self.tokenizer, feed.logprobs[start:due], tokens[start:due])

    def _add_unsent(self, feed: JobFeed, text: str, records: list[dict] = ()) -> None:
        if text or records:
            with self._lock:
                if feed in self._feeds:
                    self._unsent[feed] = self._unsent.get(feed, "") + text
                    if records:
                        self._unsent_records[feed] = self._unsent_records.get(feed, []) + list(records)
