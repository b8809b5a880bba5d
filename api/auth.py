"""API keys: who is calling, as an opaque owner id that scopes which jobs they may see, and who is an admin."""

from __future__ import annotations

import hmac
import ipaddress

from flask import Request

from core.errors import Forbidden, Unauthorized
from core.owners.ids import ANONYMOUS_OWNER, owner_id_for_key
from core.settings import Settings


def _presented_key(request: Request) -> str | None:
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get("X-API-Key")


def owner_of(request: Request, api_keys: list[str]) -> str:
    """The caller's owner id; raises Unauthorized when keys are configured and none matches."""
    if not api_keys:
        return ANONYMOUS_OWNER
    presented = _presented_key(request)
    if not presented:
        raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    # Compare against every key in constant time so timing reveals nothing about near-misses.
    if not any(hmac.compare_digest(presented.encode(), key.encode()) for key in api_keys):
        raise Unauthorized("the API key is not valid")
    return owner_id_for_key(presented)


def is_loopback_address(address: str | None) -> bool:
    """Whether a caller's address is this machine's own (loopback)."""
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_local_caller(request: Request, settings: Settings) -> bool:
    """Whether the caller is on this machine: its address (the proxy's forwarded one with TRUST_PROXY_HOPS) is
    loopback."""
    if settings.trust_proxy_hops:
        forwarded = [part for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        # A request that did not pass through every trusted proxy still shows a proxy's own (loopback) address.
        if len(forwarded) < settings.trust_proxy_hops:
            return False
    return is_loopback_address(request.remote_addr)


def require_admin(request: Request, settings: Settings) -> None:
    """Pass an admin: a key of ADMIN_API_KEYS, or, with API_KEYS unset, a caller on this machine.

    Raises Unauthorized for a missing or wrong key, Forbidden for anyone else."""
    keys = settings.api_key_values
    if not keys:
        if not is_local_caller(request, settings):
            raise Forbidden("this is served only to this machine while API_KEYS is unset")
        return
    presented = _presented_key(request)
    owner_of(request, keys)  # raises Unauthorized
    if not any(admin == presented for admin in settings.admin_api_keys):
        raise Forbidden("this is for admin keys only (ADMIN_API_KEYS)")


def is_admin(request: Request, settings: Settings) -> bool:
    """Whether require_admin would pass."""
    try:
        require_admin(request, settings)
    except (Unauthorized, Forbidden):
        return False
    return True
