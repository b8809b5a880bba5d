"""OpenAI files in Redis: an upload read a chunk at a time (UTF-8 only, bounded, nothing kept when refused), its
record and text read back by its owner alone, listings newest first, deletes, output files written piece by piece."""

from __future__ import annotations

import pytest

from core.errors import BodyTooLarge, FileNotFound, InvalidInput, TooManyRequests
from core.limits.file_quota import FileQuota
from core.openai.files import (
    CHUNK_CHARS,
    CHUNKS_PER_WRITE,
    MAX_FILENAME_CHARS,
    FileStore,
    clean_filename,
    decoded_chunks,
    is_file_id,
    new_file_id,
)
from core.redis.keys import OPENAI_FILE_CONTENT_KEY, OPENAI_FILE_KEY, OPENAI_FILE_OWNER_INDEX_KEY

TTL_S = 3600


@pytest.fixture
def files(client) -> FileStore:
    return FileStore(client, ttl_s=TTL_S, max_bytes=10_000_000)


def upload(files: FileStore, text: str, owner: str = "owner-a", name: str = "in.jsonl"):
    return files.upload(owner, name, "batch", [text.encode()])


def test_file_ids_have_openais_shape():
    made = new_file_id()
    assert is_file_id(made) and made.startswith("file-") and made != new_file_id()
    assert not is_file_id("file-XYZ") and not is_file_id(f"{made}x")


def test_a_filename_loses_its_control_characters_and_must_keep_some_length():
    assert clean_filename(" a\x00b\x1b[31m\u202ec.jsonl\n") == "ab[31mc.jsonl"
    for bad in ("\x00\x01", "x" * (MAX_FILENAME_CHARS + 1)):
        with pytest.raises(InvalidInput) as refused:
            clean_filename(bad)
        assert refused.value.field == "file"


def test_text_is_decoded_across_chunk_boundaries_and_refused_when_not_utf8_or_too_large():
    encoded = "Xin chào".encode()
    split = encoded.index(b"\xc3") + 1  # inside the two bytes of "à"
    assert "".join(decoded_chunks([encoded[:split], encoded[split:]], 100)) == "Xin chào"
    with pytest.raises(InvalidInput) as refused:
        list(decoded_chunks([b"ab", b"c\xff"], 100))
    assert refused.value.field == "file" and "byte 3" in refused.value.message
    with pytest.raises(InvalidInput, match="ends inside a character"):
        list(decoded_chunks([encoded[:split]], 100))
    with pytest.raises(BodyTooLarge):
        list(decoded_chunks([b"12345", b"678"], 7))


def test_an_upload_is_kept_for_its_owner_with_its_text_and_record(files, client):
    stored = upload(files, '{"a": 1}\n', name="in\x00.jsonl")
    assert stored.filename == "in.jsonl" and stored.bytes == 9 and stored.expires_at == stored.created_at + TTL_S
    assert files.get_for_owner(stored.id, "owner-a") == stored
    assert "".join(files.content(stored.id)) == '{"a": 1}\n'
    assert stored.public_view().model_dump() == {
        "id": stored.id,
        "object": "file",
        "bytes": 9,
        "created_at": stored.created_at,
        "expires_at": stored.expires_at,
        "filename": "in.jsonl",
        "purpose": "batch",
        "status": "processed",
        "status_details": None,
    }
    assert 0 < client.ttl(OPENAI_FILE_KEY.format(file_id=stored.id)) <= TTL_S
    assert 0 < client.ttl(OPENAI_FILE_CONTENT_KEY.format(file_id=stored.id)) <= TTL_S


def test_another_owner_or_a_malformed_id_finds_no_file(files):
    stored = upload(files, "x")
    for file_id, owner in ((stored.id, "owner-b"), ("file-nope", "owner-a"), (new_file_id(), "owner-a")):
        with pytest.raises(FileNotFound):
            files.get_for_owner(file_id, owner)


def test_a_large_file_is_stored_in_chunks_and_read_back_whole(files, client):
    text = "é" * (CHUNK_CHARS * (CHUNKS_PER_WRITE + 2) + 5)
    raw = text.encode()
    stored = files.upload("owner-a", "big.txt", "batch", [raw[i : i + 1000] for i in range(0, len(raw), 1000)])
    assert stored.bytes == len(raw)
    assert client.llen(OPENAI_FILE_CONTENT_KEY.format(file_id=stored.id)) > CHUNKS_PER_WRITE
    assert "".join(files.content(stored.id)) == text


def test_a_refused_upload_keeps_nothing(files, client):
    with pytest.raises(InvalidInput) as refused:
        files.upload("owner-a", "in.jsonl", "assistants", [b"x"])
    assert refused.value.field == "purpose"
    with pytest.raises(InvalidInput):
        files.upload("owner-a", "in.jsonl", "batch", [b"ok", b"\xff"])
    with pytest.raises(BodyTooLarge):
        FileStore(client, ttl_s=TTL_S, max_bytes=3).upload("owner-a", "in.jsonl", "batch", [b"1234"])
    assert client.keys("*") == []


def test_uploads_past_the_owners_quota_are_refused_and_a_delete_frees_its_place(client):
    quota = FileQuota(client, max_files=1, max_bytes=1000, file_ttl_s=TTL_S)
    files = FileStore(client, ttl_s=TTL_S, max_bytes=1000, quota=quota)
    first = upload(files, "one")
    with pytest.raises(TooManyRequests):
        upload(files, "two")
    assert [stored.id for stored in files.list_for_owner("owner-a", limit=10, after=None, purpose=None)[0]] == [
        first.id
    ]
    files.delete(first)
    assert upload(files, "two").bytes == 3


def test_listings_are_newest_first_page_after_an_id_and_filter_by_purpose(files):
    made = [upload(files, str(n)) for n in range(3)]
    writer = files.writer("owner-a", "out.jsonl", "batch_output")
    writer.add("answer\n")
    output = writer.close()
    upload(files, "other", owner="owner-b")
    page, more = files.list_for_owner("owner-a", limit=2, after=None, purpose=None)
    assert [stored.id for stored in page] == [output.id, made[2].id] and more
    page, more = files.list_for_owner("owner-a", limit=3, after=made[2].id, purpose=None)
    assert [stored.id for stored in page] == [made[1].id, made[0].id] and not more
    page, _ = files.list_for_owner("owner-a", limit=10, after=None, purpose="batch_output")
    assert page == [output]
    with pytest.raises(InvalidInput) as refused:
        files.list_for_owner("owner-a", limit=10, after=new_file_id(), purpose=None)
    assert refused.value.field == "after"


def test_an_output_file_is_unseen_until_closed_and_lives_its_own_ttl(files, client):
    writer = files.writer("owner-a", "out.jsonl", "batch_output", ttl_s=7200)
    writer.add("a\n")
    assert files.get(writer.id) is None
    stored = writer.close()
    assert stored.purpose == "batch_output" and stored.expires_at == stored.created_at + 7200
    assert TTL_S < client.ttl(OPENAI_FILE_KEY.format(file_id=stored.id)) <= 7200
    assert "".join(files.content(stored.id)) == "a\n"


def test_a_delete_removes_the_record_the_text_and_the_listing(files, client):
    stored = upload(files, "x")
    files.delete(stored)
    assert files.get(stored.id) is None and list(files.content(stored.id)) == []
    assert client.zcard(OPENAI_FILE_OWNER_INDEX_KEY.format(owner="owner-a")) == 0


def test_a_discarded_writer_leaves_nothing(files, client):
    writer = files.writer("owner-a", "out.jsonl", "batch_output")
    for _ in range(CHUNKS_PER_WRITE):  # enough full chunks to be sent before close
        writer.add("x" * CHUNK_CHARS)
    assert client.exists(writer.content_key)
    writer.discard()
    assert client.keys("*") == []
