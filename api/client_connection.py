"""Whether the HTTP client of a streamed answer is still connected, so a job nobody reads any more is canceled.

Under gunicorn the request's socket is in the WSGI environ; a client that closed its end makes the socket readable
with nothing to read. Looking costs one zero-timeout select (cooperative under gevent), so a stream can look
several times a second instead of waiting for a write to fail. Servers without the socket rely on their writes.
"""

from __future__ import annotations

import select
import socket
from typing import Any


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The request's socket, where the server exposes it (gunicorn does)."""
    sock = environ.get("gunicorn.socket")
    return sock if hasattr(sock, "fileno") and hasattr(sock, "recv") else None


def has_left(sock: socket.socket) -> bool:
    """True once the client has closed (or reset) its connection; never blocks."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        # Readable with nothing to read is the client's end of the stream; data (a pipelined request) is not.
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # reset, or already closed on this side
        return True
