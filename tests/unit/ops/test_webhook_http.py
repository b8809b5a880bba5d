"""POST to a checked callback: to the very address checked, bounded in time, redirects not followed."""

from __future__ import annotations

import socket
import threading

import pytest

from core.webhooks.callback_urls import check_callback_url
from ops.webhook_http import post_json


def test_the_body_and_headers_arrive_and_the_status_comes_back(receiver):
    receiver.answers.append(204)
    target = check_callback_url(receiver.url, allow_private=True, allowed_ports=[receiver.port])
    assert post_json(target, '{"a": 1}', {"Content-Type": "application/json", "X-Test": "yes"}, 3) == 204
    headers, body = receiver.requests[0]
    assert body == b'{"a": 1}' and headers["X-Test"] == "yes"


def test_a_redirect_is_answered_as_its_status_not_followed(receiver):
    receiver.answers.append(302)
    target = check_callback_url(receiver.url, allow_private=True, allowed_ports=[receiver.port])
    assert post_json(target, "{}", {}, 3) == 302 and len(receiver.requests) == 1


def test_a_receiver_that_never_answers_is_cut_off_at_the_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    target = check_callback_url(f"http://127.0.0.1:{port}/", allow_private=True, allowed_ports=[port])
    with pytest.raises(OSError):
        post_json(target, "{}", {}, 0.5)
    listener.close()
