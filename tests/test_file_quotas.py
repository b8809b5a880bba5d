"""`POST /v1/files` under per-key quotas: a key past its file count or bytes gets 429 naming the limit while other
keys still upload; a refused upload keeps nothing; stored filenames carry no control characters."""

from __future__ import annotations

import io
import threading
import time

import pytest

from api.app import create_app
from core.errors import StoreUnavailable, TooManyRequests
from core.jobs.store import connect
from core.limits.file_quota import FileQuota
from core.openai.files import FileStore
from core.owners.ids import owner_id_for_key
from core.redis.keys import OPENAI_FILE_USAGE_BYTES_KEY, OPENAI_FILE_USAGE_KEY

KEY_A, KEY_B = "quota-key-a", "quota-key-b"
LINE = b'{"custom_id": "x", "method": "POST", "url": "/v1/completions", "body": {"prompt": "hi"}}\n'
MIB = 1024 * 1024


def jsonl_of(size: int) -> bytes:
    """UTF-8 JSON lines of about `size` bytes."""
    return LINE * (size // len(LINE) + 1)


def upload(client, key: str, data: bytes, filename: str = "input.jsonl"):
    return client.post(
        "/v1/files",
        data={"purpose": "batch", "file": (io.BytesIO(data), filename)},
        headers={"Authorization": f"Bearer {key}"},
        content_type="multipart/form-data",
    )


def content_keys(redis_client) -> set[str]:
    return set(redis_client.scan_iter(match="llm:openai:file:*:content", count=1000))


def counted_files(redis_client, key: str) -> int:
    return int(redis_client.zcard(OPENAI_FILE_USAGE_KEY.format(owner=owner_id_for_key(key))))


@pytest.fixture
def quota_client(make_settings):
    """The API in-process with two keys, its quotas (and other settings) as the test asks."""

    def build(**overrides):
        settings = make_settings(api_keys=f"{KEY_A},{KEY_B}", **overrides)
        return create_app(settings).test_client()

    return build


@pytest.fixture
def redis_client(redis_server):
    """The session's Redis, with nothing counted yet against either key (an earlier test's files are forgotten)."""
    client = connect(redis_server.url)
    for key in (KEY_A, KEY_B):
        owner = owner_id_for_key(key)
        client.delete(OPENAI_FILE_USAGE_KEY.format(owner=owner), OPENAI_FILE_USAGE_BYTES_KEY.format(owner=owner))
    return client


def test_past_its_file_count_a_key_gets_429_naming_the_limit_and_another_key_still_uploads(quota_client, redis_client):
    client = quota_client(max_files_per_key=2)
    stored = [upload(client, KEY_A, jsonl_of(1000)) for _ in range(2)]
    assert [response.status_code for response in stored] == [200, 200]

    refused = upload(client, KEY_A, jsonl_of(1000))
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.get_json()["error"]
    assert "MAX_FILES_PER_KEY" in error["message"] and error["code"] == "too_many_requests"

    assert upload(client, KEY_B, jsonl_of(1000)).status_code == 200
    # A delete gives the place back.
    file_id = stored[0].get_json()["id"]
    assert client.delete(f"/v1/files/{file_id}", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 200
    assert upload(client, KEY_A, jsonl_of(1000)).status_code == 200


def test_an_upload_past_the_byte_quota_gets_429_and_keeps_none_of_its_chunks(quota_client, redis_client):
    client = quota_client(max_file_bytes_per_key=int(2.5 * MIB))
    assert upload(client, KEY_A, jsonl_of(MIB)).status_code == 200
    before = content_keys(redis_client)

    # 3 MiB: its first MiB is written before the quota refuses the second.
    refused = upload(client, KEY_A, jsonl_of(3 * MIB))
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert "MAX_FILE_BYTES_PER_KEY" in refused.get_json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert content_keys(redis_client) == before
    assert counted_files(redis_client, KEY_A) == 1

    assert upload(client, KEY_B, jsonl_of(2 * MIB)).status_code == 200


@pytest.mark.parametrize(
    ("data", "status", "overrides"),
    [
        # Valid text for 2 MiB (two writes to Redis), then a byte that is not UTF-8.
        (jsonl_of(2 * MIB) + b"\xff\n", 400, {}),
        # Past OPENAI_FILE_MAX_BYTES (within the form's allowance, so it is read), found once its first MiB is written.
        (jsonl_of(int(1.2 * MIB) + 30_000), 413, {"openai_file_max_bytes": int(1.2 * MIB)}),
    ],
    ids=["not-utf8", "too-large"],
)
def test_a_refused_upload_deletes_every_chunk_it_wrote(quota_client, redis_client, data, status, overrides):
    client = quota_client(**overrides)
    before = content_keys(redis_client)
    response = upload(client, KEY_A, data)
    assert response.status_code == status, response.get_data(as_text=True)
    assert content_keys(redis_client) == before
    assert counted_files(redis_client, KEY_A) == 0


def test_stored_filenames_lose_control_characters(quota_client, redis_client):
    client = quota_client()
    name = "in\x00put\x1b[31m\x85\u2028\u202e.jsonl"
    response = upload(client, KEY_A, jsonl_of(100), filename=name)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["filename"] == "input[31m.jsonl"

    only_controls = upload(client, KEY_A, jsonl_of(100), filename="\x1b\x07\u2029")
    assert only_controls.status_code == 400
    assert only_controls.get_json()["error"]["param"] == "file"


def test_files_that_expire_stop_counting(redis_client):
    # A file's expiry is in whole seconds from the second it was stored, so a lifetime of 3 s lasts at least 2 s:
    # room for the refusal below on a loaded machine (with 1 s, an upload late in its second lapsed at once).
    quota = FileQuota(redis_client, max_files=2, max_bytes=MIB, file_ttl_s=3)
    files = FileStore(redis_client, ttl_s=3, max_bytes=MIB, quota=quota)
    owner = owner_id_for_key(KEY_A)
    for _ in range(2):
        files.upload(owner, "a.jsonl", "batch", [jsonl_of(1000)])
    with pytest.raises(TooManyRequests):
        files.upload(owner, "a.jsonl", "batch", [jsonl_of(1000)])
    time.sleep(3.2)  # both records expire on their own; nobody deletes them
    files.upload(owner, "a.jsonl", "batch", [jsonl_of(1000)])
    assert counted_files(redis_client, KEY_A) == 1


def test_racing_uploads_of_one_key_never_pass_its_count(redis_client):
    quota = FileQuota(redis_client, max_files=3, max_bytes=64 * MIB, file_ttl_s=3600)
    files = FileStore(redis_client, ttl_s=3600, max_bytes=64 * MIB, quota=quota)
    owner = owner_id_for_key(KEY_A)
    outcomes: list[str] = []
    start = threading.Barrier(12)

    def one_upload() -> None:
        start.wait()
        try:
            files.upload(owner, "a.jsonl", "batch", [jsonl_of(256 * 1024)] * 6)
            outcomes.append("stored")
        except TooManyRequests:
            outcomes.append("refused")

    threads = [threading.Thread(target=one_upload) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 9 + ["stored"] * 3
    assert counted_files(redis_client, KEY_A) == 3


def test_an_upload_refused_by_a_full_redis_keeps_nothing(own_redis):
    """Redis at maxmemory (noeviction) refuses the file's record; the chunks written before it are still deleted."""
    client = connect(own_redis.url)
    quota = FileQuota(client, max_files=10, max_bytes=64 * MIB, file_ttl_s=3600)
    files = FileStore(client, ttl_s=3600, max_bytes=64 * MIB, quota=quota)
    client.config_set("maxmemory", 1)
    with pytest.raises(StoreUnavailable):
        files.upload("someone", "a.jsonl", "batch", [jsonl_of(2 * MIB)])
    client.config_set("maxmemory", 0)
    assert content_keys(client) == set()
    assert client.zcard(OPENAI_FILE_USAGE_KEY.format(owner="someone")) == 0
