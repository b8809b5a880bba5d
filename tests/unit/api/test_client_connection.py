"""Noticing a client that left: the socket from the WSGI environ, and the watch over it."""

from __future__ import annotations

import socket
import threading

from api.client_connection import DepartureWatch, client_socket


def test_the_socket_comes_from_gunicorns_environ_only():
    left, right = socket.socketpair()
    with left, right:
        assert client_socket({"gunicorn.socket": left}) is left
        assert client_socket({}) is None
        assert client_socket({"gunicorn.socket": "not a socket"}) is None


def test_a_client_closing_its_end_is_noticed_once():
    server_side, client_side = socket.socketpair()
    left = threading.Event()
    calls = []
    watch = DepartureWatch(server_side, lambda: (calls.append(1), left.set())).start()
    client_side.close()
    assert left.wait(5)
    watch.stop()
    server_side.close()
    assert calls == [1]


def test_a_client_still_there_or_sending_more_is_not_taken_for_gone():
    server_side, client_side = socket.socketpair()
    calls = []
    with server_side, client_side:
        with DepartureWatch(server_side, lambda: calls.append(1)):
            client_side.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request: the watch ends, nothing read
        assert server_side.recv(64) == b"GET / HTTP/1.1\r\n"
        with DepartureWatch(server_side, lambda: calls.append(1)):
            pass
    assert calls == []


def test_without_a_socket_the_watch_does_nothing():
    with DepartureWatch(None, lambda: (_ for _ in ()).throw(AssertionError("called"))) as watch:
        assert watch._thread is None
