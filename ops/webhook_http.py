"""POST to a vetted callback URL, connecting to the very address that was checked; redirects are not followed."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading

from core.webhooks.callback_urls import CheckedUrl


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: CheckedUrl, timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: CheckedUrl, timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s, context=ssl.create_default_context())
        self.address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        # The certificate is checked against the URL's host name, while the socket goes to the checked address.
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def _cut_off(connection: http.client.HTTPConnection) -> None:
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def post_json(target: CheckedUrl, body: str, headers: dict[str, str], timeout_s: float) -> int:
    """Send the body; return the HTTP status. Raises OSError or http.client.HTTPException on failure.

    `timeout_s` bounds the whole attempt, not each read: a receiver that trickles its answer a byte at a time is
    cut off, so an attempt never outlives the sender's claim on the delivery.
    """
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout_s)
    deadline = threading.Timer(timeout_s, _cut_off, args=(connection,))
    deadline.daemon = True
    deadline.start()
    try:
        connection.request("POST", target.path, body=body.encode(), headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # the receiver's answer is not used; don't read an unbounded one
        return response.status
    finally:
        deadline.cancel()
        connection.close()
