"""OpenAI batch records in Redis: a retried create keeps the first record, a finished record starts its expiry,
an owner sees and lists only their own, and one finalizer at a time."""

from __future__ import annotations

import pytest

from core.batches.model import new_batch_id
from core.errors import BatchNotFound, InvalidInput
from core.openai.batch_records import OpenAIBatch
from core.openai.batch_store import FINALIZE_LOCK_S, OpenAIBatchStore
from core.openai.protocol import Endpoint
from core.redis.keys import OPENAI_BATCH_FINALIZING_KEY, OPENAI_BATCH_KEY, OPENAI_BATCH_OWNER_INDEX_KEY

TTL_S = 3600


@pytest.fixture
def records(client) -> OpenAIBatchStore:
    return OpenAIBatchStore(client, ttl_s=TTL_S)


def record(owner: str = "owner-a", **fields) -> OpenAIBatch:
    values = {
        "id": new_batch_id(),
        "owner": owner,
        "endpoint": Endpoint.CHAT_COMPLETIONS,
        "input_file_id": "file-" + "0" * 32,
        "completion_window": "24h",
        "created_at": 1700000000,
        "expires_at": 1700086400,
    }
    return OpenAIBatch(**(values | fields))


def test_a_record_is_stored_without_expiry_while_its_batch_runs(records, client):
    made = records.add(record(metadata={"k": "v"}))
    assert records.get(made.id) == made and records.get(made.id).metadata == {"k": "v"}
    assert client.ttl(OPENAI_BATCH_KEY.format(batch_id=made.id)) == -1


def test_a_retried_create_gets_the_record_stored_first(records):
    first = records.add(record())
    again = records.add(record(id=first.id, input_file_id="file-" + "1" * 32))
    assert again == first
    assert [found.id for found in records.list_for_owner("owner-a", limit=10, after=None)[0]] == [first.id]


def test_a_failed_record_and_a_finished_one_expire_with_their_listing_entries(records, client):
    failed = records.add(record(failed_at=1700000001))
    assert 0 < client.ttl(OPENAI_BATCH_KEY.format(batch_id=failed.id)) <= TTL_S
    running = records.add(record())
    running.output_file_id = "file-" + "2" * 32
    records.save(running)
    assert client.ttl(OPENAI_BATCH_KEY.format(batch_id=running.id)) == -1
    running.final_status, running.finished_at = "completed", 1700000100
    records.save(running)
    assert records.get(running.id).final_status == "completed"
    assert 0 < client.ttl(OPENAI_BATCH_KEY.format(batch_id=running.id)) <= TTL_S


def test_another_owner_or_a_malformed_id_finds_no_batch(records):
    made = records.add(record())
    assert records.get_for_owner(made.id, "owner-a") == made
    for batch_id, owner in ((made.id, "owner-b"), ("batch_nope", "owner-a"), (new_batch_id(), "owner-a")):
        with pytest.raises(BatchNotFound):
            records.get_for_owner(batch_id, owner)


def test_an_owners_records_are_listed_newest_first_after_an_id(records, client):
    made = [records.add(record()) for _ in range(3)]
    records.add(record(owner="owner-b"))
    page, more = records.list_for_owner("owner-a", limit=2, after=None)
    assert [found.id for found in page] == [made[2].id, made[1].id] and more
    page, more = records.list_for_owner("owner-a", limit=5, after=made[1].id)
    assert [found.id for found in page] == [made[0].id] and not more
    with pytest.raises(InvalidInput) as refused:
        records.list_for_owner("owner-a", limit=5, after=new_batch_id())
    assert refused.value.field == "after"
    assert client.zcard(OPENAI_BATCH_OWNER_INDEX_KEY.format(owner="owner-a")) == 3


def test_one_finalizer_at_a_time_for_at_most_the_lock_time(records, client):
    batch_id = new_batch_id()
    assert records.try_finalizing(batch_id) and not records.try_finalizing(batch_id)
    assert 0 < client.ttl(OPENAI_BATCH_FINALIZING_KEY.format(batch_id=batch_id)) <= FINALIZE_LOCK_S
    records.done_finalizing(batch_id)
    assert records.try_finalizing(batch_id)
