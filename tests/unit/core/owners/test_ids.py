"""Owner ids: a stable hash of the API key, so Redis never holds the key itself."""

from __future__ import annotations

from core.owners.ids import owner_id_for_key


def test_an_owner_id_is_stable_short_and_hides_the_key():
    owner = owner_id_for_key("sk-secret-key")
    assert owner == owner_id_for_key("sk-secret-key") and len(owner) == 24
    assert "secret" not in owner and owner != owner_id_for_key("sk-secret-kez")
