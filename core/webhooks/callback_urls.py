"""Callback URLs that may be called: http(s) only, and only to public addresses (no SSRF into the network).

The host is resolved once; every address it resolves to must be public, and the caller connects to one of
those very addresses (no second lookup, so DNS rebinding can't swap it). Only the web ports are allowed, so a
callback can't probe other services, and a refusal never says which address a name resolved to (no DNS oracle).
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `is_global` lets through, or that are special anyway: IETF protocol assignments (192.0.0.8 is
# "global"), benchmarking, and cloud metadata addresses outside the private ranges.
_EXTRA_BLOCKED = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "fd00:ec2::254/128",
    )
]
_NAT64_PREFIXES = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]


DEFAULT_ALLOWED_PORTS = (80, 443)


def _port_refusal(allowed_ports: Collection[int]) -> str:
    ports = ", ".join(str(port) for port in sorted(allowed_ports)) or "none"
    return f"webhook: only ports {ports} can be called (WEBHOOK_ALLOWED_PORTS)"


class CallbackUrlRefused(InvalidInput):
    """The callback URL points where this service must not send requests."""


class CallbackHostUnresolved(CallbackUrlRefused):
    """The host did not resolve: refused at submit, but at send time possibly a passing DNS failure."""


@dataclass(frozen=True)
class CheckedUrl:
    """A URL whose host was resolved and vetted; connect to `address`, send `Host: host`."""

    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as the request line carries them
    address: str


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: mapped, 6to4, NAT64, Teredo, or IPv4-compatible."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d, the deprecated IPv4-compatible form
        return ipaddress.IPv4Address(int(address))
    return None


def is_public(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses, also when IPv4 hides inside IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
    if not address.is_global or address.is_multicast or address.is_unspecified or address.is_reserved:
        return False
    return not any(address.version == net.version and address in net for net in _EXTRA_BLOCKED)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to (numeric forms like 2130706433 or 0x7f.1 included)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise CallbackHostUnresolved(f"webhook: the host {host!r} does not resolve", field="webhook") from error
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def _has_invisible_characters(url: str) -> bool:
    """Spaces, control or format characters: they would be sent as typed, or split the request line."""
    return any(char.isspace() or unicodedata.category(char) in ("Cc", "Cf") for char in url)


def check_callback_url(
    url: str, *, allow_private: bool, allowed_ports: Collection[int] = DEFAULT_ALLOWED_PORTS
) -> CheckedUrl:
    """Vet a callback URL; raises CallbackUrlRefused saying why it can't be called.

    Ports outside `allowed_ports` are refused, except for local receivers when `allow_private` lets those in.
    """
    if len(url) > 2048:
        raise CallbackUrlRefused("webhook: the URL is longer than 2048 characters", field="webhook")
    if _has_invisible_characters(url):
        raise CallbackUrlRefused("webhook: the URL holds spaces or control characters", field="webhook")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise CallbackUrlRefused(f"webhook: not a valid URL ({error})", field="webhook") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlRefused("webhook: only http and https URLs can be called", field="webhook")
    host = parts.hostname
    if not host:
        raise CallbackUrlRefused("webhook: the URL has no host", field="webhook")
    if parts.username or parts.password:
        raise CallbackUrlRefused("webhook: credentials in the URL are not accepted", field="webhook")
    port_allowed = port in allowed_ports
    if not port_allowed and not allow_private:  # refused before any lookup: nothing is learned about the name
        raise CallbackUrlRefused(_port_refusal(allowed_ports), field="webhook")
    addresses = resolve(host, port)
    if not allow_private and not all(is_public(a) for a in addresses):
        raise CallbackUrlRefused(
            f"webhook: {host} resolves to a private address; set WEBHOOK_ALLOW_PRIVATE=true to allow local receivers",
            field="webhook",
        )
    if not port_allowed and any(is_public(a) for a in addresses):
        raise CallbackUrlRefused(_port_refusal(allowed_ports), field="webhook")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return CheckedUrl(url, parts.scheme, host, port, path, str(addresses[0]))
