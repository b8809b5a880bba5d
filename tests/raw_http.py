"""Raw HTTP/1.0 connections for the tests that hold hundreds of requests open from one thread.

HTTP/1.0: the server closes each connection after its answer, so an answer is everything read until the close.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def open_request(
    base_url: str, method: str, path: str, *, headers: dict[str, str] | None = None, body: dict | None = None
) -> socket.socket:
    """Send one request on a connection of its own and return the connection, its answer unread."""
    parts = urlsplit(base_url)
    connection = socket.create_connection((parts.hostname, parts.port), timeout=60)
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.0", f"Host: {parts.hostname}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return connection


def parse_answer(raw: bytes) -> RawAnswer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split()[1]), headers, body)


def read_head(connection: socket.socket) -> RawAnswer:
    """The answer's status line and headers (and whatever body came with them), without waiting for its end."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = connection.recv(65536)
        if not chunk:
            break
        raw += chunk
    return parse_answer(raw)


def read_all(connection: socket.socket) -> RawAnswer:
    """The whole answer, read until the server closes the connection."""
    raw = b""
    while chunk := connection.recv(65536):
        raw += chunk
    connection.close()
    return parse_answer(raw)


def read_all_of(connections: list[socket.socket], timeout_s: float) -> list[RawAnswer | None]:
    """Every connection's whole answer, read side by side from one thread; None for one still open at timeout."""
    selector = selectors.DefaultSelector()
    bodies = {connection: bytearray() for connection in connections}
    for connection in connections:
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            try:
                chunk = key.fileobj.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                bodies[key.fileobj] += chunk
            else:
                selector.unregister(key.fileobj)
                key.fileobj.close()
    open_ones = set(selector.get_map().values())
    for key in open_ones:
        key.fileobj.close()
    still_open = {key.fileobj for key in open_ones}
    return [None if connection in still_open else parse_answer(bytes(bodies[connection])) for connection in connections]
