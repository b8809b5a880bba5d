"""Continuous batching: many jobs share the one model; each joins the running batch and leaves when done.

Built on transformers' continuous-batching manager. What it can't honour per request (`seed`,
`repetition_penalty`) runs on the sequential engine in a lane of its own, one job at a time, taking turns with the
batch token by token (the manager pauses for each of its steps), so no parameter is ever silently ignored and the
model is never driven by two threads at once. Stop strings are honoured in the batch: such requests stream, and are
cancelled as soon as a stop appears. Stop token ids join the request's end ids; presence/frequency penalties and
min_tokens are per-request logits rules (worker/request_rules.py) applied to the request's own row of each step,
where the manager runs its steps eagerly; where it doesn't (CUDA graphs, compile) such jobs take the sequential lane.
Logprobs are captured the same way, per request (worker/logprobs.py); `echo` with logprobs needs a forward pass over
the prompt, so such jobs take the sequential lane.

Liveness: the manager's loop, the dispatcher and the cancel watcher must all be alive. When one dies (or the loop
stops on a fatal error) every job still in the engine gets EngineDead and `alive()` turns false: the worker hands
the jobs back to the queue and exits. An out-of-memory error in a batch step is not fatal: the jobs of that batch
fail `out_of_memory` and the manager is started again in the same process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from transformers.generation.continuous_batching.requests import RequestStatus

from core.jobs.model import JobInput
from core.settings import Settings
from worker.batching_manager import ManagerFactory
from worker.choices import combined, not_started
from worker.generation import (
    EngineDead,
    EngineFailed,
    EngineStopped,
    GenerationResult,
    Progress,
    TokenLogprob,
    check_token_ids,
)
from worker.grammar import grammar_failure
from worker.model_loading import LoadedModel
from worker.places import Places
from worker.request_rules import TokenRule
from worker.sampling import SamplingPlan
from worker.sequential_engine import SequentialEngine
from worker.stop_strings import StopScanner

log = logging.getLogger("llm.worker")

CANCEL_POLL_S = 0.05
LIVENESS_POLL_S = 0.2
# How long a failed request waits to learn whether the whole loop is going down (a fatal error) or only it failed.
FATAL_CONFIRM_S = 1.0
SLOT_POLL_S = 0.1
# How transformers names the forks of a request (its choices after the first): `<request id>__child#<i>`.
FORK_SUFFIX = "__child#"


class OutOfMemoryInBatch(Exception):
    """The device ran out of memory during a batch step this job was part of."""


@dataclass
class _Pending(Progress):
    """One job's request inside the batch, as the dispatcher thread sees it."""

    stops: StopScanner | None = None
    should_cancel: Callable[[], bool] | None = None
    on_tokens: Callable[[list[int]], None] | None = None
    on_logprobs: Callable[[list[TokenLogprob]], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    failure: Exception | None = None
    rules: list[TokenRule] = field(default_factory=list)  # its per-request logits rules (worker/request_rules.py)


class _ModelTurns:
    """Holds the manager paused while a sequential job runs, letting it take one step between two of the job's."""

    def __init__(self, manager) -> None:
        self.manager = manager
        self._pause: contextlib.AbstractContextManager | None = None

    def __enter__(self) -> _ModelTurns:
        self._pause = self.manager.pause()
        self._pause.__enter__()
        return self

    def take_turns(self) -> None:
        """Release the model for one step of the batch, then take it back."""
        self._pause.__exit__(None, None, None)
        self._pause = self.manager.pause()
        self._pause.__enter__()

    def __exit__(self, *exc_info) -> None:
        self._pause.__exit__(None, None, None)


class BatchingEngine:
    """Owns the continuous-batching manager and the threads that feed it, route its outputs and watch them."""

    def __init__(self, loaded: LoadedModel, settings: Settings) -> None:
        # The sequential lane runs on the same model: the batch reads its tokenizer, prompt encoder and EOS ids.
        self.sequential = SequentialEngine(loaded)
        self.model = self.sequential.model
        self.tokenizer = self.sequential.tokenizer
        self.device = self.sequential.device
        self.encoder = self.sequential.encoder
        self.eos_token_ids = self.sequential.eos_token_ids
        self.vocab_size = self.model.config.get_text_config().vocab_size
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._admitting = True
        self._restarting = threading.Lock()
        self._adding = threading.Lock()
        self.death: str | None = None
        # Batch places: a job waits here (still queued in the store) rather than inside the manager's queue.
        self._batch_places = Places(settings.max_batch_size)
        self._factory = ManagerFactory(
            self.model,
            self.tokenizer,
            settings,
            eos_token_ids=self.eos_token_ids,
            context_tokens=self.encoder.context_tokens,
        )
        self.manager = self._factory.start()
        self._threads = [
            self._guarded_thread(self._dispatch_outputs, "cb-dispatcher"),
            # One thread asks every job whether to stop, rather than each job's thread waking up to ask.
            self._guarded_thread(self._watch_for_cancels, "cb-cancels"),
            self._guarded_thread(self._watch_liveness, "cb-liveness"),
        ]

    # ------------------------------------------------------------------ the worker's side

    @contextlib.contextmanager
    def slot(self, params: JobInput, rank: int, *, alone: bool = False) -> Iterator[None]:
        """A place in the batch, or the sequential lane, given by priority `rank` (lower first), then arrival.

        `alone` takes every place of the batch (and the lane if the job needs it): a job whose last run died with
        its worker runs with no neighbour, so if it is what kills workers, it takes no other job down with it.
        """
        sequential = self._runs_sequentially(SamplingPlan.of(params))
        holds = []
        if alone:
            holds.append((self._batch_places, self._batch_places.count))
        elif not sequential:
            # Each choice is a request of the batch; more choices than places run in waves (see generate).
            holds.append((self._batch_places, min(params.choice_count, self._batch_places.count)))
        if sequential:
            holds.append((self.sequential.lane, 1))
        taken = []
        try:
            for places, count in holds:
                places.acquire(rank, SLOT_POLL_S, self._refuse_if_not_admitting, count)
                taken.append((places, count))
            self._refuse_if_not_admitting()
            yield
        finally:
            for places, count in reversed(taken):
                places.release(count)

    def generate(
        self,
        params: JobInput,
        should_cancel: Callable[[], bool] | None = None,
        on_tokens: Callable[[list[int]], None] | None = None,
        on_logprobs: Callable[[list[TokenLogprob]], None] | None = None,
    ) -> GenerationResult:
        """Run one job inside the shared batch (or in the sequential lane when it must); blocks until done.

        A job with n choices is n requests of the batch, each with its own id, stop scanner and logits rules: one
        request whose prompt is prefilled once, then forked. As many run at once as the batch has places (the
        job's slot holds that many), in waves when n is larger; `on_tokens` follows choice 0. A cancel reaches
        every choice; a stop string ends only its own.
        """
        self._refuse_if_not_running()
        plan = SamplingPlan.of(params)
        if self._runs_sequentially(plan):
            return self._generate_sequential(params, should_cancel, on_tokens, on_logprobs)
        prompt_ids = self.encoder.encode(params)
        check_token_ids(params, self.vocab_size)
        started = time.perf_counter()
        count, wave = params.choice_count, self._batch_places.count
        results: list[GenerationResult] = []
        for first in range(0, count, wave):
            indexes = range(first, min(first + wave, count))
            if results and should_cancel is not None and should_cancel():
                results += [not_started(len(prompt_ids)) for _ in indexes]
                continue
            followers = (on_tokens, on_logprobs) if first == 0 else (None, None)
            requests = self._add_choices(params, plan, prompt_ids, should_cancel, followers, len(indexes))
            results += self._wait_for(requests, params, plan)
        return combined(results, time.perf_counter() - started)

    def _add_choices(
        self,
        params: JobInput,
        plan: SamplingPlan,
        prompt_ids: list[int],
        should_cancel: Callable[[], bool] | None,
        followers: tuple[Callable[[list[int]], None] | None, Callable[[list[TokenLogprob]], None] | None],
        count: int,
    ) -> list[tuple[str, _Pending]]:
        """`count` choices of the job in the batch: one request and its forks, or (a one-token prompt, which
        transformers can't fork) as many separate requests; `followers` (on_tokens, on_logprobs) follow the
        first."""
        sizes = [count] if len(prompt_ids) > 1 else [1] * count
        requests: list[tuple[str, _Pending]] = []
        for size in sizes:
            on_tokens, on_logprobs = (None, None) if requests else followers
            requests += self._add_request(params, plan, prompt_ids, should_cancel, on_tokens, on_logprobs, size)
        return requests

    def _add_request(
        self,
        params: JobInput,
        plan: SamplingPlan,
        prompt_ids: list[int],
        should_cancel: Callable[[], bool] | None,
        on_tokens: Callable[[list[int]], None] | None,
        on_logprobs: Callable[[list[TokenLogprob]], None] | None,
        choices: int = 1,
    ) -> list[tuple[str, _Pending]]:
        """One request of the job in the batch, under a fresh id, forked into `choices` requests: transformers
        prefills the prompt once, then gives each fork (`<id>__child#<i>`) a copy of its cache."""
        request_id = uuid.uuid4().hex
        ids = [request_id, *(f"{request_id}{FORK_SUFFIX}{i}" for i in range(choices - 1))]
        requests = []
        for index, choice_id in enumerate(ids):
            stops = StopScanner(self.tokenizer, params.stop) if params.stop else None
            pending = _Pending(
                len(prompt_ids),
                time.perf_counter(),
                stops=stops,
                should_cancel=should_cancel,
                on_tokens=on_tokens if index == 0 else None,
            )
            if params.echo:
                pending.prompt_ids = prompt_ids
            if plan.logprobs is not None and index == 0:
                pending.on_logprobs = on_logprobs
            requests.append((choice_id, pending))
            with self._lock:
                self._pending[choice_id] = pending
                self._note_batch_size()
            pending.rules = plan.token_rules(self.eos_token_ids, self.sequential.grammars)
            if pending.rules:
                self._factory.request_rules.register(choice_id, pending.rules)
            if plan.logprobs is not None:
                self._factory.logprobs_capture.register(choice_id, plan.logprobs)
        with self._adding:
            # The manager forks every request into num_return_sequences; only this engine adds requests, under this
            # lock, so the count is this request's alone.
            manager, forks_before = self.manager, self.manager.num_return_sequences
            manager.num_return_sequences = choices
            try:
                added = manager.add_request(
                    prompt_ids,
                    request_id=request_id,
                    # Streamed outputs carry the tokens so far: a canceled or stopped job keeps its partial text.
                    streaming=True,
                    record_timestamps=True,
                    **plan.batch_request(self.vocab_size, self.eos_token_ids),
                )
            finally:
                manager.num_return_sequences = forks_before
        for choice_id, pending in requests:
            if added is None:  # the manager refuses new requests: it is stopping or its loop has failed
                self._finish(choice_id, failure=self._refusal())
            elif pending.done.is_set():
                # Canceled between registering and adding: without this the request would run on, unread.
                self.manager.cancel_request(choice_id)
        return requests

    def _wait_for(
        self, requests: list[tuple[str, _Pending]], params: JobInput, plan: SamplingPlan
    ) -> list[GenerationResult]:
        """Every request's result, in order; the first failure cancels the job's other requests and is raised."""
        for index, (_, pending) in enumerate(requests):
            pending.done.wait()
            pending.failure = pending.failure or grammar_failure(pending.rules)
            if pending.failure is not None:
                for request_id, other in requests[index + 1 :]:
                    if not other.done.is_set():
                        self._finish(request_id, canceled=True)
                        self.manager.cancel_request(request_id)
                raise pending.failure
        return [
            pending.result(self.tokenizer, plan.end_token_ids(self.eos_token_ids), params.stop, plan.stop_token_ids)
            for _, pending in requests
        ]

    def _runs_sequentially(self, plan: SamplingPlan) -> bool:
        """The job needs the sequential lane: what the batch can't apply, or rules where the batch can't run them."""
        return (
            plan.needs_sequential_path
            or (plan.has_token_rules and self._factory.request_rules is None)
            or (plan.logprobs is not None and self._factory.logprobs_capture is None)
        )

    def release_cached_memory(self) -> None:
        """Empty the CUDA cache, but only when no job is in the batch (it would only slow them down)."""
        with self._lock:
            idle = not self._pending
        if idle:
            self.sequential.release_cached_memory()

    def shutdown(self) -> None:
        """Stop the manager's generation thread (it is not a daemon: a worker would hang at exit without this).

        Jobs still inside get EngineStopped: the worker hands them back to the queue.
        """
        self._stopping.set()
        self._fail_all(EngineStopped("the worker is stopping"))
        self.manager.stop(block=True, timeout=10, hard_stop=True)

    def alive(self) -> bool:
        """Every engine thread runs (the worker stops announcing itself when this turns false)."""
        return self.death is None

    def stop_admitting(self) -> None:
        """Jobs not yet started are refused from now on (EngineStopped); those inside run on."""
        self._admitting = False

    # ------------------------------------------------------------------ internals

    def _refuse_if_not_running(self) -> None:
        if self.death is not None:
            raise EngineDead(self.death)
        if self._stopping.is_set():
            raise EngineStopped("the worker is stopping")

    def _refuse_if_not_admitting(self) -> None:
        self._refuse_if_not_running()
        if not self._admitting:
            raise EngineStopped("the worker is stopping")

    def _refusal(self) -> Exception:
        if self._stopping.is_set():
            return EngineStopped("the worker is stopping")
        return EngineDead(self.death or "the batching manager refused the request (its loop is not running)")

    def _generate_sequential(self, params: JobInput, should_cancel, on_tokens, on_logprobs) -> GenerationResult:
        try:
            with _ModelTurns(self.manager) as turns:
                return self.sequential.generate(
                    params, should_cancel, on_tokens, between_tokens=turns.take_turns, on_logprobs=on_logprobs
                )
        except RuntimeError as error:
            if "generation loop" in str(error) or not self.manager.is_running():
                # Waiting for the pause raises when the manager's loop is gone: that is the engine's death.
                raise self._refusal() from error
            raise

    def _note_batch_size(self) -> None:
        """Each job remembers the most jobs it shared the batch with (call under the lock)."""
        active = len(self._pending)
        for pending in self._pending.values():
            pending.batch_size = max(pending.batch_size, active)

    def _finish(self, request_id: str, *, canceled: bool = False, failure: Exception | None = None) -> None:
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if self._factory.request_rules is not None:
            self._factory.request_rules.forget(request_id)
        capture = self._factory.logprobs_capture
        captured = capture.finish(request_id, pending.tokens if pending else []) if capture is not None else None
        if pending is None:
            return
        pending.logprobs = captured
        pending.canceled = pending.canceled or canceled
        pending.failure = failure
        pending.finished_at = time.perf_counter()
        pending.done.set()

    def _fail_all(self, failure: Exception) -> None:
        with self._lock:
            request_ids = list(self._pending)
        for request_id in request_ids:
            self._finish(request_id, failure=failure)

    def _guarded_thread(self, loop: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                loop()
            except BaseException as error:  # noqa: BLE001 - any death of an engine thread ends the engine
                log.critical("engine thread %s died", name, exc_info=error)
                self._die(f"the engine's {name} thread died: {type(error).__name__}: {error}")

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def _die(self, reason: str) -> None:
        """The engine can run no more jobs: fail what is inside with EngineDead and tell the worker, once."""
        with self._lock:
            if self.death is not None or self._stopping.is_set():
                return
            self.death = reason
        log.critical("the batching engine is dead: %s", reason)
        self._fail_all(EngineDead(reason))

    def _watch_liveness(self) -> None:
        while not self._stopping.wait(LIVENESS_POLL_S):
            if self.death is not None:
                return
            with self._restarting:
                manager_running = self.manager.is_running()
            if not manager_running and not self._stopping.is_set():
                self._after_loop_stopped()
            for thread in self._threads:
                if thread is not threading.current_thread() and not thread.is_alive() and not self._stopping.is_set():
                    self._die(f"the engine's {thread.name} thread is not running")

    def _after_loop_stopped(self) -> None:
        """The manager's loop ended on its own: restart it after an out-of-memory, else the engine is dead."""
        fatal = self.manager.background_thread_status.fatal_error
        if isinstance(fatal, torch.OutOfMemoryError) and self.death is None:
            log.error("out of memory in a batch step: its jobs fail, the batching manager starts again")
            self._fail_all(OutOfMemoryInBatch(f"the device ran out of memory in a batch step: {fatal}"))
            with self._restarting:
                self.manager = self._factory.restart(self.manager)
            return
        self._die(f"the batching manager's loop stopped: {fatal!r}" if fatal else "the batching manager's loop stopped")

    def _dispatch_outputs(self) -> None:
        """The only reader of the manager's output queue (get_result by id would shuffle others' outputs)."""
        while not self._stopping.is_set() and self.death is None:
            output = self.manager.get_result(timeout=0.1)
            if output is None:
                continue
            with self._lock:
                pending = self._pending.get(output.request_id)
            if pending is None:
                continue  # canceled or stopped earlier: late outputs are dropped
            pending.tokens = output.generated_tokens
            if pending.on_logprobs is not None and self._factory.logprobs_capture is not None:
                pending.on_logprobs(self._factory.logprobs_capture.so_far(output.request_id, pending.tokens))
            if pending.on_tokens is not None:
                pending.on_tokens(pending.tokens)  # hands the list over; the publisher decodes it in its own thread
            if output.timestamps and pending.first_token_at is None:
                pending.first_token_at = output.timestamps[0]
            if output.status == RequestStatus.FAILED:
                self._request_failed(output)
            elif output.is_finished():
                # A stop string may arrive with the last token, before any streamed check saw it.
                pending.stop_hit = pending.stops is not None and pending.stops.seen(pending.tokens)
                self._finish(output.request_id)
            elif pending.stops is not None and pending.stops.seen(pending.tokens):
                pending.stop_hit = True
                self._finish(output.request_id)
                self.manager.cancel_request(output.request_id)

    def _request_failed(self, output) -> None:
        """One failed output: the request's own failure, or the first sign of the whole loop going down."""
        deadline = time.monotonic() + FATAL_CONFIRM_S
        while time.monotonic() < deadline:
            # A fatal error fails every request first and records itself after: give it a moment to show.
            if self.manager.background_thread_status.fatal_error is not None or not self.manager.is_running():
                return  # the liveness watcher restarts the manager or ends the engine, for all its jobs at once
            time.sleep(0.02)
        self._finish(output.request_id, failure=EngineFailed(output.error or "generation failed"))

    def _watch_for_cancels(self) -> None:
        while not self._stopping.wait(CANCEL_POLL_S):
            with self._lock:
                watched = [(rid, p.should_cancel) for rid, p in self._pending.items() if p.should_cancel is not None]
            for request_id, should_cancel in watched:
                if should_cancel():
                    self._finish(request_id, canceled=True)
                    self.manager.cancel_request(request_id)
