"""Engine wrappers that fake what can't happen on this machine (a GPU out of memory) or must not happen to the
test process itself (a crash). The worker loads one with ENGINE_WRAPPER=tests.fault_engines:<name>."""

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

    def release_cached_memory(self) -> None:
        self.engine.release_cached_memory()

    def shutdown(self) -> None:
        self.engine.shutdown()


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
