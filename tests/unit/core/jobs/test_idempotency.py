"""Idempotency-Key claims in Redis: a repeat gets what the first request stored, a different body is refused, a
failed request releases its key, and a claim whose work was never stored is taken over once it is stale."""

from __future__ import annotations

import json
import time

import pytest

from core.errors import InvalidInput, StoreUnavailable
from core.jobs import idempotency
from core.jobs.idempotency import IdempotencyKeys

STORED = {"job-1": "the first job"}


def claim(keys: IdempotencyKeys, key: str | None, new_id: str, body_hash: str = "h1", owner: str = "owner-a"):
    """What the claim yields: the earlier request's work, or None when this request holds the key."""
    with keys.claim(key, body_hash, owner, new_id, STORED.get) as earlier:
        return earlier


def claims(client) -> list[dict]:
    return [json.loads(client.get(key)) for key in client.scan_iter("llm:idem*")]


def test_no_key_claims_nothing(client):
    assert claim(IdempotencyKeys(client), None, "job-1") is None
    assert claims(client) == []


def test_a_repeat_gets_the_stored_work_of_the_first(client):
    keys = IdempotencyKeys(client)
    assert claim(keys, "k", "job-1") is None
    [held] = claims(client)
    assert held["id"] == "job-1" and held["body_hash"] == "h1"
    assert claim(keys, "k", "job-2") == "the first job"
    assert claim(keys, "k", "job-3", owner="owner-b") is None  # keys are per owner


def test_a_different_body_under_the_same_key_is_refused(client):
    keys = IdempotencyKeys(client)
    claim(keys, "k", "job-1")
    with pytest.raises(InvalidInput, match="different body") as refused:
        claim(keys, "k", "job-2", body_hash="h2")
    assert refused.value.field == "Idempotency-Key"


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_key_of_the_wrong_length_is_refused(client, key):
    with pytest.raises(InvalidInput, match="1 to 255 characters"):
        claim(IdempotencyKeys(client), key, "job-1")


def test_a_request_that_fails_releases_its_key_for_a_retry(client):
    keys = IdempotencyKeys(client)
    with pytest.raises(RuntimeError), keys.claim("k", "h1", "owner-a", "job-9", STORED.get):
        raise RuntimeError("the queue refused")
    assert claims(client) == []
    assert claim(keys, "k", "job-10") is None


def test_a_stale_claim_whose_work_was_never_stored_is_taken_over(client):
    keys = IdempotencyKeys(client, stale_after_s=0.05)
    claim(keys, "k", "never-stored")
    time.sleep(0.06)
    assert claim(keys, "k", "job-5") is None
    assert [c["id"] for c in claims(client)] == ["job-5"]


def test_a_fresh_claim_whose_work_is_not_stored_yet_is_waited_for_then_retry_later(client, monkeypatch):
    monkeypatch.setattr(idempotency, "EARLIER_WAIT_S", 0.1)
    keys = IdempotencyKeys(client, stale_after_s=60)
    claim(keys, "k", "still-storing")
    with pytest.raises(StoreUnavailable, match="not stored yet") as refused:
        claim(keys, "k", "job-6")
    assert refused.value.retry_after_s == 1
    assert [c["id"] for c in claims(client)] == ["still-storing"]
