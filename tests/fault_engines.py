"""Engine wrappers that fake what can't happen on this machine (a GPU out of memory) or must not happen to the
test process itself (a crash). `python -m tests.fault_worker <name>` runs the real worker with one of them."""

from __future__ import annotations

import os
import signal

import torch

OOM_MARKER = "@@oom@@"
POISON_MARKER = "@@poison@@"


class _Wrapper:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.device = engine.device

    def slot(self, params):
        return self.engine.slot(params)

    def release_cached_memory(self) -> None:
        self.engine.release_cached_memory()

    def shutdown(self) -> None:
        self.engine.shutdown()

    def alive(self) -> bool:
        return self.engine.alive()

    def stop_admitting(self) -> None:
        self.engine.stop_admitting()


class _OomOnMarker(_Wrapper):
    def generate(self, params, should_cancel=None):
        if OOM_MARKER in (params.prompt or ""):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake, from a test)")
        return self.engine.generate(params, should_cancel)


class _KillOnMarker(_Wrapper):
    def generate(self, params, should_cancel=None):
        if POISON_MARKER in (params.prompt or ""):
            os.kill(os.getpid(), signal.SIGKILL)  # the whole worker dies, every time
        return self.engine.generate(params, should_cancel)


def oom_on_marker(engine):
    """Raise torch's real OutOfMemoryError for prompts carrying OOM_MARKER."""
    return _OomOnMarker(engine)


def kill_on_marker(engine):
    """SIGKILL the worker for prompts carrying POISON_MARKER."""
    return _KillOnMarker(engine)
