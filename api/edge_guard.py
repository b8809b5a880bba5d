"""Which requests the API answers at all: Host names it serves (DNS rebinding), writes only from its own origin
(cross-site pages), and the proxies whose forwarded headers it believes."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from core.errors import Forbidden
from core.settings import Settings, is_loopback_host, normalized_host

# Methods a browser sends cross-site only to read (never to submit, cancel or upload).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ANY_HOST = "*"


def split_host(host: str) -> tuple[str, int | None]:
    """A Host header's name (normalized) and port, if it names one; ("", None) when it can't be read."""
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port
    except ValueError:
        return "", None
    return normalized_host(parts.hostname or ""), port


def served_host_names(settings: Settings) -> frozenset[str] | None:
    """The Host names answered beside the loopback ones; None for any (keys set and ALLOWED_HOSTS unset, or `*`)."""
    if _ANY_HOST in settings.allowed_hosts or (settings.api_keys and not settings.allowed_hosts):
        return None
    names = set(settings.allowed_hosts)
    api_host = normalized_host(settings.api_host)
    # API_HOST naming one address (not a wildcard like 0.0.0.0) is a name clients already use to reach the API.
    if api_host not in ("0.0.0.0", "::", ""):
        names.add(api_host)
    return frozenset(names)


def is_same_origin(origin: str, host: str) -> bool:
    """Whether a browser's Origin names the host (and port) the request was sent to.

    The scheme is not compared: behind a TLS proxy the API hears http for a page the browser loaded over https."""
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False  # `null` (a sandboxed frame, a file) or something no browser sends
    default_port = _DEFAULT_PORTS[parts.scheme]
    try:
        origin_port = parts.port or default_port
    except ValueError:
        return False
    host_name, host_port = split_host(host)
    # A browser leaves the default port out of Host exactly when it leaves it out of Origin.
    return host_name == normalized_host(parts.hostname) and (host_port or default_port) == origin_port


def install_edge_guard(app: Flask, settings: Settings) -> None:
    """Refuse (403) a Host the API does not serve and a write from another origin, before anything else runs."""
    names = served_host_names(settings)

    @app.before_request
    def _guard() -> None:
        if names is not None:
            host_name, _ = split_host(request.host)
            if not (is_loopback_host(host_name) or host_name in names):
                raise Forbidden(
                    "this API does not serve this Host name; name it in ALLOWED_HOSTS to serve it"
                    + ("" if settings.api_keys else " (with API_KEYS unset only loopback names are served)")
                )
        origin = request.headers.get("Origin")
        if request.method not in READ_METHODS and origin is not None and not is_same_origin(origin, request.host):
            raise Forbidden(
                "a write from another origin is refused: send it from the API's own origin, or not from a browser"
            )

    if settings.trust_proxy_hops:
        # Only the caller's address and the scheme: a forwarded Host would let a client choose what the Host check
        # sees through a proxy that passes the header on.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trust_proxy_hops, x_proto=settings.trust_proxy_hops)
