"""Owner ids: the opaque name under which a caller's jobs, batches and limits are kept."""

from __future__ import annotations

import hashlib

ANONYMOUS_OWNER = "anonymous"  # every caller, when the service has no API keys


def owner_id_for_key(api_key: str) -> str:
    """The owner id of an API key: a hash, so Redis never holds the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]
