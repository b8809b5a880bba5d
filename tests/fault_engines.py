"""Engine wrappers that fake what can't happen on this machine (a GPU out of memory) or must not happen to the
test process itself (a crash). `python -m tests.fault_worker <name>` runs the real worker with one of them."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import torch

OOM_MARKER = "@@oom@@"
POISON_MARKER = "@@poison@@"


class _Wrapper:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.device = engine.device

    def slot(self, params, rank, *, alone=False):
        return self.engine.slot(params, rank, alone=alone)

    def release_cached_memory(self) -> None:
        self.engine.release_cached_memory()

    def shutdown(self) -> None:
        self.engine.shutdown()

    def alive(self) -> bool:
        return self.engine.alive()

    def stop_admitting(self) -> None:
        self.engine.stop_admitting()


class _OomOnMarker(_Wrapper):
    def generate(self, params, should_cancel=None, on_tokens=None, on_logprobs=None):
        if OOM_MARKER in (params.prompt or ""):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake, from a test)")
        return self.engine.generate(params, should_cancel, on_tokens, on_logprobs=on_logprobs)


class _KillOnMarker(_Wrapper):
    def generate(self, params, should_cancel=None, on_tokens=None, on_logprobs=None):
        if POISON_MARKER in (params.prompt or ""):
            os.kill(os.getpid(), signal.SIGKILL)  # the whole worker dies, every time
        return self.engine.generate(params, should_cancel, on_tokens, on_logprobs=on_logprobs)


def oom_on_marker(engine):
    """Raise torch's real OutOfMemoryError for prompts carrying OOM_MARKER."""
    return _OomOnMarker(engine)


def kill_on_marker(engine):
    """SIGKILL the worker for prompts carrying POISON_MARKER."""
    return _KillOnMarker(engine)


def _once(name: str) -> bool:
    """True the first time a fault of this name fires in this test (a marker file beside the execution log), so a
    restarted worker runs clean."""
    marker = Path(os.environ["EXECUTION_LOG"]).with_name(f"fault-{name}.fired")
    if marker.exists():
        return False
    marker.touch()
    return True


def _fail_a_batch_step(engine, name: str, error: Exception, after_steps: int) -> None:
    """Make one forward pass of the batching manager raise `error`, once, after `after_steps` passes with at least
    two requests in the batch (so the fault lands mid-batch)."""
    model = engine.model
    real_forward = model.forward
    steps = [0]

    def forward(*args, **kwargs):
        if threading.current_thread().name != threading.main_thread().name and _is_batch_step(kwargs):
            steps[0] += 1
            if steps[0] > after_steps and _once(name):
                raise error
        return real_forward(*args, **kwargs)

    model.forward = forward


def _is_batch_step(kwargs) -> bool:
    logits_indices = kwargs.get("logits_indices")
    return logits_indices is not None and logits_indices.numel() >= 2


def crash_batch_step_once(engine):
    """The manager's loop dies mid-batch on a non-memory error (once per test)."""
    _fail_a_batch_step(engine, "crash", RuntimeError("a fault injected into a batch step"), after_steps=20)
    return engine


def oom_in_batch_step_once(engine):
    """A batch step runs out of memory (once per test)."""
    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB (injected into a batch step)")
    _fail_a_batch_step(engine, "oom-step", error, after_steps=20)
    return engine


def kill_dispatcher_once(engine):
    """The thread that routes the manager's outputs dies (once per test)."""
    manager = engine.manager
    real_get_result = manager.get_result
    outputs = [0]

    def get_result(*args, **kwargs):
        output = real_get_result(*args, **kwargs)
        if output is not None:
            outputs[0] += 1
            if outputs[0] > 40 and _once("dispatcher"):
                raise RuntimeError("a fault injected into the dispatcher")
        return output

    manager.get_result = get_result
    return engine


def kill_cancel_watcher_on_cancel(engine):
    """The thread that watches for cancels dies when it passes on the first cancel (once per test)."""
    manager = engine.manager
    real_cancel = manager.cancel_request

    def cancel_request(request_id):
        if threading.current_thread().name == "cb-cancels" and _once("cancel-watcher"):
            raise RuntimeError("a fault injected into the cancel watcher")
        return real_cancel(request_id)

    manager.cancel_request = cancel_request
    return engine
