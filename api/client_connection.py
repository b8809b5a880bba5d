"""Noticing that the HTTP client of a streamed answer has gone, so the job nobody reads any more is canceled.

Under gunicorn the request's socket is in the WSGI environ. A client that closed its end makes the socket readable
with nothing to read, so a watcher that waits for the socket to become readable hears of it at once, without
waiting for a write to fail (which may take a while on an idle stream: a job still queued). Under gevent, the
API's server model, the watcher is a greenlet: it holds no OS thread. Servers without the socket (the in-process
test client) get no watcher, and rely on their writes failing.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from typing import Any

# How often the watcher also looks whether the stream it watches for has ended by itself.
_LOOK_S = 0.5


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The request's socket, where the server exposes it (gunicorn does)."""
    sock = environ.get("gunicorn.socket")
    return sock if hasattr(sock, "fileno") and hasattr(sock, "recv") else None


class DepartureWatch:
    """Calls `on_leave` once if the client leaves before `stop()`; a no-op without a socket."""

    def __init__(self, sock: socket.socket | None, on_leave: Callable[[], None]) -> None:
        self._sock = sock
        self._on_leave = on_leave
        self._stopped = threading.Event()

    def start(self) -> DepartureWatch:
        if self._sock is not None:
            threading.Thread(target=self._watch, name="stream-client-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        sock = self._sock
        while not self._stopped.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], _LOOK_S)
                # Readable with nothing to read is the client's end of the stream. Data instead (a pipelined
                # request) means it is there: the watch ends, and a failing write will tell if it leaves later.
                left = bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):  # reset, or closed on this side
                left = True
            if left and not self._stopped.is_set():
                self._on_leave()
            if left or readable:
                return
