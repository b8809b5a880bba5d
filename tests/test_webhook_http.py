"""The webhook POST: pinned to the vetted address, and bounded in total time, not per read."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from core.webhooks.callback_urls import check_callback_url
from ops.webhook_http import post_json


def trickling_receiver(delay_per_byte_s: float) -> int:
    """A receiver that answers 200, one byte every `delay_per_byte_s` (about 12 s in all at 0.3)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        connection, _ = server.accept()
        request = b""
        while not request.endswith(b"{}"):  # the whole request (headers, then the body `{}`), or the peer resets
            chunk = connection.recv(65536)
            if not chunk:
                break
            request += chunk
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                connection.send(bytes([byte]))
                time.sleep(delay_per_byte_s)
        except OSError:
            pass
        finally:
            connection.close()
            server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_a_trickling_receiver_is_cut_off_at_the_attempt_timeout():
    target = check_callback_url(f"http://127.0.0.1:{trickling_receiver(0.3)}/hook", allow_private=True)
    started = time.monotonic()
    with pytest.raises((OSError, http.client.HTTPException)):
        post_json(target, "{}", {"Content-Type": "application/json"}, timeout_s=1.0)
    assert time.monotonic() - started < 3  # not the ~12 s the answer would take


def test_a_prompt_receiver_gets_its_status_back():
    target = check_callback_url(f"http://127.0.0.1:{trickling_receiver(0.0)}/hook", allow_private=True)
    assert post_json(target, "{}", {"Content-Type": "application/json"}, timeout_s=5.0) == 200
