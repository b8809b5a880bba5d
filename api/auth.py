"""API keys: who is calling, as an opaque owner id that scopes which jobs they may see."""

from __future__ import annotations

import hmac

from flask import Request

from core.errors import Unauthorized
from core.owners import ANONYMOUS_OWNER, owner_id_for_key


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
