"""API keys and admins: who is calling, and who may see what is for operators."""

from __future__ import annotations

import pytest
from flask import Flask

from api.auth import is_admin, is_local_caller, is_loopback_address, owner_of, require_admin
from core.errors import Forbidden, Unauthorized
from core.owners.ids import ANONYMOUS_OWNER, owner_id_for_key

app = Flask(__name__)


def request_with(headers: dict | None = None, remote_addr: str = "127.0.0.1"):
    context = app.test_request_context(headers=headers or {}, environ_base={"REMOTE_ADDR": remote_addr})
    context.push()
    from flask import request

    return context, request


@pytest.fixture
def make_request():
    contexts = []

    def build(headers=None, remote_addr="127.0.0.1"):
        context, request = request_with(headers, remote_addr)
        contexts.append(context)
        return request

    yield build
    for context in reversed(contexts):
        context.pop()


def test_without_keys_every_caller_is_the_anonymous_owner(make_request):
    assert owner_of(make_request(), []) == ANONYMOUS_OWNER


def test_a_key_is_read_from_bearer_or_x_api_key_and_becomes_an_opaque_owner(make_request):
    bearer = owner_of(make_request({"Authorization": "Bearer k1"}), ["k1", "k2"])
    header = owner_of(make_request({"X-API-Key": "k1"}), ["k1", "k2"])
    assert bearer == header == owner_id_for_key("k1") and "k1" not in bearer
    assert owner_of(make_request({"Authorization": "Bearer k2"}), ["k1", "k2"]) != bearer


def test_a_missing_or_wrong_key_is_unauthorized(make_request):
    with pytest.raises(Unauthorized, match="required"):
        owner_of(make_request(), ["k1"])
    with pytest.raises(Unauthorized, match="not valid"):
        owner_of(make_request({"Authorization": "Bearer nope"}), ["k1"])


@pytest.mark.parametrize(("address", "loopback"), [("127.0.0.1", True), ("::1", True), ("10.0.0.1", False),
                                                     ("nonsense", False), (None, False)])  # fmt: skip
def test_loopback_addresses(address, loopback):
    assert is_loopback_address(address) is loopback


def test_behind_a_proxy_the_caller_is_local_only_through_every_trusted_hop(make_request, make_settings):
    direct = make_settings()
    assert is_local_caller(make_request(), direct)
    assert not is_local_caller(make_request(remote_addr="10.1.2.3"), direct)
    proxied = make_settings(trust_proxy_hops=1)
    assert not is_local_caller(make_request(), proxied)  # no X-Forwarded-For: it did not pass the proxy
    assert is_local_caller(make_request({"X-Forwarded-For": "127.0.0.1"}), proxied)


def test_admins_are_admin_keys_or_with_no_keys_the_local_machine(make_request, make_settings):
    keyless = make_settings()
    require_admin(make_request(), keyless)
    with pytest.raises(Forbidden):
        require_admin(make_request(remote_addr="10.1.2.3"), keyless)
    keyed = make_settings(api_keys=["user", "boss"], admin_api_keys=["boss"])
    require_admin(make_request({"Authorization": "Bearer boss"}), keyed)
    with pytest.raises(Forbidden):
        require_admin(make_request({"Authorization": "Bearer user"}), keyed)
    with pytest.raises(Unauthorized):
        require_admin(make_request(), keyed)
    assert is_admin(make_request({"Authorization": "Bearer boss"}), keyed)
    assert not is_admin(make_request({"Authorization": "Bearer user"}), keyed)
