"""The child processes of `make run`: each started in a session of its own, restarted with backoff, stopped in turn."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Backoff:
    """Delays before restarts: `first_s`, doubling up to `max_s`; back to `first_s` after `stable_after_s` up."""

    first_s: float = 1.0
    max_s: float = 30.0
    # A process that stayed up this long was healthy: its next exit is not one more in a series of crashes.
    stable_after_s: float = 60.0


# prctl(2): the signal a process gets when the thread that started it dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when `make run` dies, even by SIGKILL (each child is in a session of
    its own, so nothing else would stop it). Linux only; elsewhere the children outlive a killed supervisor."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before the line above: nobody will stop this child
        os.kill(os.getpid(), signal.SIGTERM)


def describe_exit(returncode: int) -> str:
    """`code 3`, or `code -9 (killed by SIGKILL)` for a process ended by a signal."""
    if returncode >= 0:
        return f"code {returncode}"
    try:
        signal_name = signal.Signals(-returncode).name
    except ValueError:
        signal_name = f"signal {-returncode}"
    return f"code {returncode} (killed by {signal_name})"


class Supervised:
    """One child process: started on demand, restarted after an exit (1 s, 2 s, 4 s ... 30 s), stopped on request."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        stop_grace_s: float,
        restart: bool,
        say: Callable[[str], None],
        backoff: Backoff = Backoff(),
        quiet: bool = False,
    ) -> None:
        self.name = name
        self.command = command
        self.cwd = cwd
        self.env = env
        self.stop_grace_s = stop_grace_s
        self.restart = restart
        self.say = say
        self.backoff = backoff
        self.quiet = quiet  # its own output is noise for whoever watches `make run` (Redis's banner and log)
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.quick_exits = 0
        self.restart_at: float | None = None
        self.stopping = False

    @property
    def pid(self) -> int | None:
        """The running process's id; None while it waits to be restarted."""
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the process (again)."""
        self.say(f"starting {self.name}: {' '.join(self.command)}")
        # A session of its own: the terminal's Ctrl-C reaches only the supervisor, which stops the children in order.
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,
            # Runs between fork and exec; fine here, as make run starts its children from its one thread.
            preexec_fn=_die_with_parent,
            stdout=subprocess.DEVNULL if self.quiet else None,
            stderr=subprocess.STDOUT if self.quiet else None,
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    def check(self) -> int | None:
        """Restart the process when its delay is over; return its exit code when it is found to have exited."""
        if self.stopping:
            return None
        now = time.monotonic()
        if self.process is None:
            if self.restart_at is not None and now >= self.restart_at:
                self.start()
            return None
        returncode = self.process.poll()
        if returncode is None or not self.restart:
            return returncode
        self.process = None
        delay = self._next_restart_delay(now)
        self.restart_at = now + delay
        self.say(f"{self.name} exited with {describe_exit(returncode)}: restarting in {delay:g} s")
        return returncode

    def _next_restart_delay(self, now: float) -> float:
        if now - self.started_at >= self.backoff.stable_after_s:
            self.quick_exits = 0
        delay = min(self.backoff.max_s, self.backoff.first_s * 2**self.quick_exits)
        self.quick_exits += 1
        return delay

    def stop(self) -> None:
        """No more restarts; SIGTERM, then SIGKILL (its whole process group) if it outlives its grace."""
        self.stopping = True
        self.restart_at = None
        if self.process is None or self.process.poll() is not None:
            return
        self.say(f"stopping {self.name}")
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.stop_grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        self.say(f"{self.name} did not stop within {self.stop_grace_s:g} s: killing it")
        # Its group is its session (start_new_session): gunicorn's workers go with their master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
