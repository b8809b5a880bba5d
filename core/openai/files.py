"""Files for the OpenAI batch workflow: uploaded batch inputs and the output files made from a batch's results.

A file is a record (JSON) and its text as a Redis list of chunks, so neither an upload nor a download is ever held
whole in memory, and no Redis value comes near its size limit. Both expire OPENAI_FILE_TTL_SECONDS after the file
was made; an owner sees only their own files (another owner's id reads as unknown). Uploads count against their
owner's quotas (core/limits/file_quota.py), and an upload refused or cut off part way deletes what it wrote.
"""

from __future__ import annotations

import codecs
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Literal

import redis
from pydantic import BaseModel

from core.errors import BodyTooLarge, FileNotFound, InvalidInput, StoreUnavailable
from core.limits.file_quota import UPLOAD_LEASE_S, FileQuota
from core.limits.memory_budget import MemoryBudget
from core.openai.protocol import OpenAIFile
from core.owners.index import owned_by, page_newest_first, shed_expired_index_entries, stage_index_expiry
from core.redis.errors import redis_boundary
from core.redis.keys import (
    OPENAI_FILE_CONTENT_KEY,
    OPENAI_FILE_KEY,
    OPENAI_FILE_OWNER_INDEX_KEY,
    OPENAI_FILE_SEQUENCE_KEY,
)

log = logging.getLogger("llm.api")

# What new_file_id makes: `file-` and a UUID4 as 32 lowercase hex digits.
FILE_ID_PATTERN = re.compile("file-[0-9a-f]{32}")
CHUNK_CHARS = 64 * 1024  # about this many characters per stored chunk
CHUNKS_PER_WRITE = 16  # chunks sent to Redis per round trip
MAX_FILENAME_CHARS = 255
# Characters a stored filename never keeps: C0 and C1 controls and DEL (NUL cuts strings short in C libraries, ESC
# starts terminal escapes when a listing is printed), the line and paragraph separators (a new line to JSON-lines
# readers and logs), and the bidirectional overrides and isolates (they make a name read as another).
_FILENAME_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

FilePurpose = Literal["batch", "batch_output"]


def new_file_id() -> str:
    """A random, URL-safe file id in OpenAI's `file-...` form."""
    return f"file-{uuid.uuid4().hex}"


def is_file_id(value: str) -> bool:
    """Whether a string has the shape of a file id (so one that doesn't is unknown without asking Redis)."""
    return FILE_ID_PATTERN.fullmatch(value) is not None


class StoredFile(BaseModel):
    """What is kept about a file besides its text."""

    id: str
    owner: str
    filename: str
    purpose: FilePurpose
    bytes: int
    created_at: int
    expires_at: int

    def public_view(self) -> OpenAIFile:
        """OpenAI's file object."""
        return OpenAIFile(
            id=self.id,
            object="file",
            bytes=self.bytes,
            created_at=self.created_at,
            expires_at=self.expires_at,
            filename=self.filename,
            purpose=self.purpose,
            status="processed",
            status_details=None,
        )


def clean_filename(filename: str) -> str:
    """The name as stored: control characters dropped; InvalidInput when nothing is left or it is too long."""
    cleaned = _FILENAME_CONTROLS.sub("", filename).strip()
    if not 0 < len(cleaned) <= MAX_FILENAME_CHARS:
        raise InvalidInput(
            f"file: its name must have 1 to {MAX_FILENAME_CHARS} characters besides control characters", field="file"
        )
    return cleaned


def decoded_chunks(raw_chunks: Iterable[bytes], max_bytes: int) -> Iterator[str]:
    """Text from raw bytes a chunk at a time: BodyTooLarge past `max_bytes`, InvalidInput if it is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    seen = 0
    for raw in raw_chunks:
        seen += len(raw)
        if seen > max_bytes:
            raise BodyTooLarge(f"the file is larger than {max_bytes} bytes")
        try:
            text = decoder.decode(raw)
        except UnicodeDecodeError as error:
            raise InvalidInput(f"file: not UTF-8 text (byte {seen - len(raw) + error.start})", field="file") from None
        if text:
            yield text
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InvalidInput("file: not UTF-8 text (it ends inside a character)", field="file") from None


class FileStore:
    """Stores, reads, lists and deletes files; every read is scoped to the owner who made the file."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_s: int,
        max_bytes: int,
        quota: FileQuota | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.quota = quota
        self.memory = memory

    def upload(self, owner: str, filename: str, purpose: str, raw_chunks: Iterable[bytes]) -> StoredFile:
        """Store an uploaded file (UTF-8 text of at most max_bytes), read a chunk at a time."""
        if purpose != "batch":
            raise InvalidInput("purpose: only `batch` files are kept here", field="purpose")
        filename = clean_filename(filename)
        if self.memory is not None:
            self.memory.check_room()
        writer = FileWriter(self.redis, owner, filename, "batch", self.ttl_s, quota=self.quota)
        try:
            writer.begin()
            for text in decoded_chunks(raw_chunks, self.max_bytes):
                if self.memory is not None:
                    self.memory.check_room()  # a reading cached for a second: a large upload stops at the mark
                writer.add(text)
            return writer.close()
        except BaseException:
            # Refused (not UTF-8, too large, over a quota, Redis full) or cut off: nothing of it is kept.
            writer.discard()
            raise

    def writer(self, owner: str, filename: str, purpose: FilePurpose, ttl_s: int | None = None) -> FileWriter:
        """A new file to add text to; it exists once closed (`ttl_s`: its lifetime, OPENAI_FILE_TTL by default)."""
        return FileWriter(self.redis, owner, filename, purpose, ttl_s or self.ttl_s)

    @redis_boundary()
    def get(self, file_id: str) -> StoredFile | None:
        """The file's record, or None if it never existed or has expired."""
        raw = self.redis.get(OPENAI_FILE_KEY.format(file_id=file_id))
        return StoredFile.model_validate_json(raw) if raw else None

    def get_for_owner(self, file_id: str, owner: str) -> StoredFile:
        """The file if this owner may see it; another owner's file is as unknown as a missing one."""
        found = self.get(file_id) if is_file_id(file_id) else None
        return owned_by(found, owner, FileNotFound(f"no file with id {file_id!r}"))

    def content(self, file_id: str) -> Iterator[str]:
        """The file's text, a chunk at a time (read from Redis a few chunks per round trip)."""
        key = OPENAI_FILE_CONTENT_KEY.format(file_id=file_id)
        start = 0
        while True:
            with redis_boundary():
                chunks = self.redis.lrange(key, start, start + CHUNKS_PER_WRITE - 1)
            if not chunks:
                return
            yield from chunks
            start += len(chunks)

    @redis_boundary()
    def list_for_owner(
        self, owner: str, *, limit: int, after: str | None, purpose: str | None
    ) -> tuple[list[StoredFile], bool]:
        """Up to `limit` files, newest first, after the file `after`; and whether more follow."""
        shed_expired_index_entries(self.redis)
        index_key = OPENAI_FILE_OWNER_INDEX_KEY.format(owner=owner)
        before = _sequence_of(self.redis, index_key, after)
        found, next_cursor = page_newest_first(
            self.redis,
            index_key,
            self._load_many,
            limit=limit,
            before_sequence=before,
            keep=lambda stored: purpose is None or stored.purpose == purpose,
        )
        return found, next_cursor is not None

    def _load_many(self, file_ids: list[str]) -> list[StoredFile | None]:
        raws = self.redis.mget([OPENAI_FILE_KEY.format(file_id=file_id) for file_id in file_ids])
        return [StoredFile.model_validate_json(raw) if raw else None for raw in raws]

    @redis_boundary()
    def delete(self, stored: StoredFile) -> None:
        """Remove the file, its text and its listing entry; it no longer counts against its owner's quotas."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(OPENAI_FILE_KEY.format(file_id=stored.id), OPENAI_FILE_CONTENT_KEY.format(file_id=stored.id))
        pipe.zrem(OPENAI_FILE_OWNER_INDEX_KEY.format(owner=stored.owner), stored.id)
        FileQuota.stage_release(pipe, stored.owner, stored.id)
        pipe.execute()


class FileWriter:
    """One file being written: text is added in pieces and sent to Redis in chunks; the record is written last
    (by close), so a file whose writing died is never seen and its chunks expire.

    With a quota (uploads), every write is counted against the owner's quotas in the same script that appends it,
    and the chunks live only UPLOAD_LEASE_S past the last write until close gives them the file's lifetime.
    """

    def __init__(
        self,
        client: redis.Redis,
        owner: str,
        filename: str,
        purpose: FilePurpose,
        ttl_s: int,
        *,
        quota: FileQuota | None = None,
    ) -> None:
        self.redis = client
        self.quota = quota
        self.owner = owner
        self.filename = filename
        self.purpose = purpose
        self.ttl_s = ttl_s
        self.id = new_file_id()
        self.content_key = OPENAI_FILE_CONTENT_KEY.format(file_id=self.id)
        self.size = 0
        self._buffer: list[str] = []
        self._buffered = 0
        self._chunks: list[str] = []
        self._chunk_bytes = 0

    def begin(self) -> None:
        """Take the file's place in its owner's count before any text is read (TooManyRequests if there is none)."""
        if self.quota is not None:
            self.quota.write(self.owner, self.id, self.content_key, [], 0)

    def add(self, text: str) -> None:
        """Append text; full chunks go to Redis a few at a time."""
        self._buffer.append(text)
        self._buffered += len(text)
        if self._buffered >= CHUNK_CHARS:
            self._end_chunk()
            if len(self._chunks) >= CHUNKS_PER_WRITE:
                self._flush()

    def close(self) -> StoredFile:
        """Write what is left and then the record; the file is listed and readable from now on."""
        if self._buffer:
            self._end_chunk()
        self._flush()
        now = int(time.time())
        stored = StoredFile(
            id=self.id,
            owner=self.owner,
            filename=self.filename,
            purpose=self.purpose,
            bytes=self.size,
            created_at=now,
            expires_at=now + self.ttl_s,
        )
        index_key = OPENAI_FILE_OWNER_INDEX_KEY.format(owner=self.owner)
        with redis_boundary():
            sequence = self.redis.incr(OPENAI_FILE_SEQUENCE_KEY)
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(OPENAI_FILE_KEY.format(file_id=self.id), stored.model_dump_json(), ex=self.ttl_s)
            pipe.expire(self.content_key, self.ttl_s)
            pipe.zadd(index_key, {self.id: sequence})
            stage_index_expiry(pipe, index_key, self.id, self.ttl_s)
            if self.quota is not None:
                self.quota.stage_stored(pipe, self.owner, self.id, self.size, stored.expires_at)
            pipe.execute()
        return stored

    def discard(self) -> None:
        """Delete what was written of a file that will not be closed, and give back its place in the quotas."""
        try:
            with redis_boundary():
                # Not a MULTI: a full Redis refuses to queue any command in one, yet takes these deletes alone.
                pipe = self.redis.pipeline(transaction=False)
                pipe.delete(self.content_key)
                FileQuota.stage_release(pipe, self.owner, self.id)
                pipe.execute()
        except StoreUnavailable as error:
            lapse_s = UPLOAD_LEASE_S if self.quota is not None else self.ttl_s
            log.warning("file %s: its written chunks are left to expire within %d s: %s", self.id, lapse_s, error)

    def _end_chunk(self) -> None:
        text = "".join(self._buffer)
        size = len(text.encode())
        self._chunks.append(text)
        self._chunk_bytes += size
        self.size += size
        self._buffer, self._buffered = [], 0

    def _flush(self) -> None:
        if not self._chunks:
            return
        if self.quota is not None:
            self.quota.write(self.owner, self.id, self.content_key, self._chunks, self._chunk_bytes)
        else:
            with redis_boundary():
                pipe = self.redis.pipeline(transaction=True)
                pipe.rpush(self.content_key, *self._chunks)
                pipe.expire(self.content_key, self.ttl_s)
                pipe.execute()
        self._chunks, self._chunk_bytes = [], 0


def _sequence_of(client: redis.Redis, index_key: str, after: str | None) -> int | None:
    """The listing position of the id a page should start after (OpenAI pages by the last id seen)."""
    if not after:
        return None
    score = client.zscore(index_key, after)
    if score is None:
        raise InvalidInput(f"after: {after!r} is not one of your listed ids", field="after")
    return int(score)
