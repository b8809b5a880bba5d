"""Noticing that the HTTP client of a call still being answered has gone, so the job nobody reads any more is
canceled.

Under gunicorn the request's socket is in the WSGI environ. A client that closed its end makes the socket readable
with nothing to read, so a watcher that waits for the socket to become readable hears of it at once, without
waiting for a write to fail (which may take a while on an idle stream, and never comes for a synchronous call
that is still waiting). Under gevent, the API's server model, the watcher is a greenlet: it holds no OS thread.
Servers without the socket (the in-process test client) get no watcher, and rely on their writes failing.

On a keep-alive connection the same socket carries the client's next request as soon as this answer ends, and
gunicorn reads it then: the watcher must be gone by that time (two greenlets waiting on one socket is an error
under gevent, and the next request would be answered 500). So `stop()` wakes it through a pipe of its own and
waits for it to end, and the watcher only ever peeks: it never takes a byte of the next request.
"""

from __future__ import annotations

import _socket
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import Any


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The request's socket, where the server exposes it (gunicorn does)."""
    sock = environ.get("gunicorn.socket")
    return sock if hasattr(sock, "fileno") and hasattr(sock, "recv") else None


class DepartureWatch:
    """Calls `on_leave` once if the client leaves before `stop()`; a no-op without a socket.

    Use it as a context manager, or call `start()` and then `stop()`, which returns only once the watcher ended.
    """

    def __init__(self, sock: socket.socket | None, on_leave: Callable[[], None]) -> None:
        self._sock = sock
        self._on_leave = on_leave
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    def start(self) -> DepartureWatch:
        if self._sock is not None:
            self._wake_r, self._wake_w = os.pipe()
            self._thread = threading.Thread(target=self._watch, name="client-departure-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch, and return once the watcher no longer touches the socket."""
        self._stopped.set()
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        os.write(self._wake_w, b"x")
        if thread is not threading.current_thread():  # `on_leave` itself may end the watch
            thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> DepartureWatch:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _watch(self) -> None:
        sock = self._sock
        try:
            # poll, not select: a busy process serves more than select's 1,024 descriptors, and select refuses
            # the higher ones (ValueError), which read as a departure and canceled jobs of callers still there.
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            ready = {fd for fd, _events in poller.poll()}
            if self._stopped.is_set() or sock.fileno() not in ready:
                return
            # Readable with nothing to read is the client's end of the stream. Data instead (a pipelined
            # request) means it is there: the watch ends, and a failing write will tell if it leaves later.
            left = _peek(sock) == b""
        except BlockingIOError:  # nothing to read after all: the client is there
            return
        except (OSError, ValueError):  # reset, or closed on this side
            left = True
        if left and not self._stopped.is_set():
            self._on_leave()


def _peek(sock: socket.socket) -> bytes:
    """Up to one byte the socket holds, left there; BlockingIOError when none has come.

    Through a plain socket on a copy of the descriptor: gevent's socket would wait for data rather than say none
    is there, and a watcher waiting so could not be stopped.
    """
    raw = _socket.socket(fileno=os.dup(sock.fileno()))
    try:
        return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    finally:
        raw.close()
