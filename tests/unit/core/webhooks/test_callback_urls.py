"""Callback URLs vetted before they are stored or called: schemes, credentials, ports and private addresses
(IPv4 hidden in IPv6 included) refused, saying why; an accepted URL pins the address it resolved to."""

from __future__ import annotations

import ipaddress

import pytest

from core.webhooks.callback_urls import CallbackUrlRefused, check_callback_url, embedded_ipv4, is_public


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/", "only http and https"),
        ("http:///path", "no host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com/a b", "spaces or control characters"),
        ("http://example.com/\u200b", "spaces or control characters"),
        ("http://example.com:8080/", "only ports 80, 443"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://127.0.0.1/", "private address"),
        ("http://[::ffff:10.0.0.1]/", "private address"),
        ("http://2130706433/", "private address"),  # 127.0.0.1 as one number
        ("http://" + "a" * 2050 + ".com/", "longer than 2048"),
    ],
)
def test_a_url_that_must_not_be_called_is_refused_saying_why(url, words):
    with pytest.raises(CallbackUrlRefused) as refused:
        check_callback_url(url, allow_private=False)
    assert words in refused.value.message and refused.value.field == "webhook"


def test_private_receivers_when_allowed_may_use_any_port_and_the_address_is_pinned():
    checked = check_callback_url("http://127.0.0.1:9001/hook?x=1", allow_private=True)
    assert (checked.host, checked.port, checked.path, checked.address) == ("127.0.0.1", 9001, "/hook?x=1", "127.0.0.1")
    assert check_callback_url("https://[::1]/", allow_private=True).port == 443


def test_an_allowed_port_list_replaces_the_web_ports():
    with pytest.raises(CallbackUrlRefused, match="only ports 8443"):
        check_callback_url("https://93.184.215.14/", allow_private=False, allowed_ports=[8443])
    assert check_callback_url("https://93.184.215.14:8443/", allow_private=False, allowed_ports=[8443]).port == 8443


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("::ffff:192.168.0.1", False),
        ("2002:0a00:0001::", False),  # 6to4 around 10.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 around 127.0.0.1
    ],
)
def test_only_globally_routable_unicast_addresses_are_public(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_the_ipv4_inside_an_ipv6_form_is_found():
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None
