"""launcher/supervisor.py with real child processes: the restart backoff and its reset, the stop grace, no restart
once stopping."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from launcher.supervisor import Backoff, Supervised
from tests.conftest import ROOT
from tests.polling import wait_until

QUICK = Backoff(first_s=0.05, max_s=0.2, stable_after_s=60)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def supervised(command: list[str], messages: list[str], **options) -> Supervised:
    """A Supervised child whose announcements land in `messages`."""
    options = {"stop_grace_s": 5.0, "restart": True, "backoff": QUICK} | options
    return Supervised("child", command, cwd=ROOT, env={}, say=messages.append, **options)


def exits(messages: list[str]) -> list[str]:
    return [message for message in messages if " exited with " in message]


def starts(messages: list[str]) -> int:
    return sum(message.startswith("starting child") for message in messages)


def keep_checking(child: Supervised, until, timeout_s: float = 20) -> None:
    """The supervisor's loop: check the child until `until()`."""

    def checked() -> bool:
        child.check()
        return until()

    wait_until(checked, timeout_s, "the child's exits", poll_s=0.01)


def test_a_crashing_process_is_restarted_after_doubling_delays_up_to_the_cap() -> None:
    messages: list[str] = []
    child = supervised(python("raise SystemExit(3)"), messages)
    child.start()
    keep_checking(child, lambda: len(exits(messages)) == 5)
    delays = ["0.05", "0.1", "0.2", "0.2", "0.2"]
    assert exits(messages) == [f"child exited with code 3: restarting in {delay} s" for delay in delays]
    child.stop()


def test_a_process_that_stayed_up_long_enough_starts_the_backoff_over() -> None:
    messages: list[str] = []
    backoff = Backoff(first_s=0.05, max_s=0.2, stable_after_s=0.2)
    child = supervised(python("import time; time.sleep(0.3); raise SystemExit(1)"), messages, backoff=backoff)
    child.start()
    keep_checking(child, lambda: len(exits(messages)) == 3)
    assert exits(messages) == ["child exited with code 1: restarting in 0.05 s"] * 3
    child.stop()


def test_a_killed_process_is_named_with_its_signal() -> None:
    messages: list[str] = []
    child = supervised(python("import time; time.sleep(60)"), messages)
    child.start()
    first_pid = child.pid
    child.process.send_signal(signal.SIGKILL)
    keep_checking(child, lambda: child.pid not in (None, first_pid))
    assert exits(messages) == ["child exited with code -9 (killed by SIGKILL): restarting in 0.05 s"]
    child.stop()
    assert child.process.returncode == -signal.SIGTERM


def test_stop_waits_for_a_process_that_finishes_within_its_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    finishing_slowly = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(0)))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n"
    )
    messages: list[str] = []
    child = supervised(python(finishing_slowly), messages, stop_grace_s=10)
    child.start()
    wait_until(ready.exists, 20, "the child to handle SIGTERM")
    child.stop()
    assert child.process.returncode == 0
    assert not any("killing" in message for message in messages)


def test_stop_kills_a_process_that_outlives_its_grace_and_never_restarts_it(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    deaf = (
        "import signal, time, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n"
    )
    messages: list[str] = []
    child = supervised(python(deaf), messages, stop_grace_s=0.5)
    child.start()
    wait_until(ready.exists, 20, "the child to ignore SIGTERM")
    started = time.monotonic()
    child.stop()
    assert 0.5 <= time.monotonic() - started < 5
    assert child.process.returncode == -signal.SIGKILL
    assert "child did not stop within 0.5 s: killing it" in messages
    for _ in range(20):
        child.check()
        time.sleep(0.01)
    assert starts(messages) == 1


def test_no_restart_once_stopping_even_when_one_was_due() -> None:
    messages: list[str] = []
    child = supervised(python("raise SystemExit(3)"), messages, backoff=Backoff(first_s=0.1))
    child.start()
    keep_checking(child, lambda: len(exits(messages)) == 1)
    child.stop()
    time.sleep(0.2)
    assert child.check() is None
    assert starts(messages) == 1


def test_a_process_not_to_restart_reports_its_exit_code_and_stays_down() -> None:
    messages: list[str] = []
    child = supervised(python("raise SystemExit(4)"), messages, restart=False)
    child.start()
    child.process.wait(20)
    assert child.check() == 4
    time.sleep(0.1)
    assert child.check() == 4
    assert starts(messages) == 1 and exits(messages) == []
