"""A batch body read as a stream, a line (or an item) at a time, and every line validated with the rules of
`POST /jobs`: the JSONL, JSON list and envelope forms, and OpenAI's batch input files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.batches.envelope import LINE_KEYS, envelope_lines, is_envelope
from core.batches.json_stream import JsonStream, array_items
from core.batches.model import MAX_BATCH_LINES, MAX_CUSTOM_ID_CHARS
from core.errors import BatchLineError, ErrorBody, InvalidInput
from core.jobs.model import GenerationInput, within_limits
from core.jobs.text_checks import check_text
from core.openai.protocol import Endpoint
from core.openai.translation import parse_openai_request

MAX_LISTED_LINE_ERRORS = 1000


@dataclass(frozen=True)
class BatchLine:
    custom_id: str
    params: GenerationInput


class InvalidBatch(InvalidInput):
    """One or more lines are bad: nothing of the batch is accepted."""

    def __init__(self, line_errors: list[dict[str, Any]], total_bad: int) -> None:
        super().__init__(f"{total_bad} line(s) of the batch are invalid; nothing was enqueued")
        self.line_errors = line_errors

    def body(self) -> ErrorBody:
        answer = super().body()
        answer.error.lines = [BatchLineError.model_validate(line) for line in self.line_errors]
        return answer


class BatchBody:
    """A batch's lines as they are read, the webhook and metadata, and the fingerprint of the raw body."""

    def __init__(
        self,
        items: Iterable[Any],
        webhook: str | None,
        metadata: dict[str, str],
        digest: Any,
        *,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.items = items
        self.webhook = webhook
        self.metadata = metadata
        self._digest = digest
        # An OpenAI batch's endpoint: then every line is in OpenAI's format and names this `url`.
        self.endpoint = endpoint

    def fingerprint(self) -> str:
        """SHA-256 of the raw body and the webhook; complete once `items` has been read through."""
        digest = self._digest.copy()
        digest.update((self.webhook or "").encode())
        return digest.hexdigest()


# Enough of the body to tell its form: an envelope names "requests" near its start.
_SNIFF_BYTES = 4096


def read_batch_body(chunks: Iterable[bytes], webhook: str | None) -> BatchBody:
    """`{"requests": [...], "webhook", "metadata"}`, a JSON list, or JSONL (one line per request).

    Every form is read as a stream, a line (or an item) at a time: whoever reads `items` stops at the line cap
    without holding more than the body. `webhook` is the one given beside the body (a query parameter); the
    envelope's own takes precedence, and is known once `items` has been read through.
    """
    digest = hashlib.sha256()
    chunks = _hashed(chunks, digest)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= _SNIFF_BYTES:
            break
    start = head.lstrip(b"\xef\xbb\xbf").lstrip()  # a UTF-8 byte order mark, then whitespace
    body = BatchBody((), webhook, {}, digest)
    if is_envelope(start[:_SNIFF_BYTES]):
        body.items = envelope_lines(_prepend(head, chunks), body)
    elif start.startswith(b"["):
        body.items = array_items(JsonStream(_prepend(head, chunks)), "the body")
    else:
        body.items = _jsonl_items(_prepend(head, chunks))
    return body


def read_jsonl_body(chunks: Iterable[bytes], metadata: dict[str, str], endpoint: Endpoint) -> BatchBody:
    """An OpenAI batch input file: JSONL, read a line at a time, every line for `endpoint`."""
    digest = hashlib.sha256()
    return BatchBody(_jsonl_items(_hashed(chunks, digest)), None, metadata, digest, endpoint=endpoint)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def _hashed(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


def _jsonl_items(chunks: Iterator[bytes]) -> Iterator[Any]:
    """One JSON value per non-blank line, read as the chunks arrive; a line that is not JSON is a _BadLine."""
    pending = b""
    first = True
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw_line in complete:
            line = _decode(raw_line) if first else raw_line.decode("utf-8", errors="replace")
            first = False
            if line.strip():
                yield _parse_line(line)
    line = _decode(pending) if first else pending.decode("utf-8", errors="replace")
    if line.strip():
        yield _parse_line(line)


def _parse_line(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        return _BadLine(f"not valid JSON: {error.msg}")
    except RecursionError:
        return _BadLine("nested too deeply")


@dataclass(frozen=True)
class _BadLine:
    reason: str


def validate_batch_lines(
    items: Iterable[Any],
    *,
    max_tokens_limit: int,
    max_prompt_chars: int,
    check: Callable[[GenerationInput], None] | None = None,
    endpoint: Endpoint | None = None,
) -> list[BatchLine]:
    """Every line validated with the rules of POST /jobs; raises InvalidBatch listing each bad line (1-based).

    Lines are taken one at a time, so a body with too many lines is refused at the first line past the cap.
    A line may be in OpenAI's format (`method`, `url`, `body` of an OpenAI request); with `endpoint` every line
    must be, for that endpoint.
    """
    errors: list[dict[str, Any]] = []
    total_bad = 0
    lines: list[BatchLine] = []
    seen: set[str] = set()
    number = 0
    for number, item in enumerate(items, start=1):
        if number > MAX_BATCH_LINES:
            raise InvalidInput(
                f"the batch has more than {MAX_BATCH_LINES} lines; at most {MAX_BATCH_LINES} are accepted"
            )
        try:
            line = _validate_line(item, seen, max_tokens_limit, max_prompt_chars, endpoint)
            if check is not None:
                check(line.params)  # e.g. the model's context, refused as this line's error
            lines.append(line)
        except InvalidInput as bad:
            total_bad += 1
            if len(errors) < MAX_LISTED_LINE_ERRORS:
                errors.append({"line": number, "message": bad.message})
    if number == 0:
        raise InvalidInput("the batch has no lines")
    if errors:
        raise InvalidBatch(errors, total_bad)
    return lines


def _validate_line(
    item: Any, seen: set[str], max_tokens_limit: int, max_prompt_chars: int, endpoint: Endpoint | None
) -> BatchLine:
    if isinstance(item, _BadLine):
        raise InvalidInput(item.reason)
    check_text(item)
    if not isinstance(item, dict) or set(item) - LINE_KEYS:
        raise InvalidInput('each line must be {"custom_id": "...", "body": {...}} (OpenAI\'s adds "method", "url")')
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID_CHARS:
        raise InvalidInput(f"custom_id: must be a string of 1 to {MAX_CUSTOM_ID_CHARS} characters")
    if custom_id in seen:
        raise InvalidInput(f"custom_id: {custom_id!r} appears more than once")
    seen.add(custom_id)
    body = item.get("body")
    if "url" in item or "method" in item or endpoint is not None:
        params = _openai_line_params(item, endpoint)
    elif isinstance(body, dict) and ("webhook" in body or "webhook_events" in body or "priority" in body):
        raise InvalidInput("body: webhook and priority are set on the batch, not on its lines")
    else:
        params = GenerationInput.parse(body)
    return BatchLine(
        custom_id, within_limits(params, max_tokens_limit=max_tokens_limit, max_prompt_chars=max_prompt_chars)
    )


def _openai_line_params(item: dict[str, Any], endpoint: Endpoint | None) -> GenerationInput:
    """An OpenAI batch line's request as its generation (the OpenAI endpoints' rules)."""
    if item.get("method", "POST") != "POST":
        raise InvalidInput(f"method: must be POST, not {item.get('method')!r}")
    url = item.get("url")
    served = " or ".join(e.value for e in Endpoint)
    try:
        line_endpoint = Endpoint(url)
    except ValueError:
        raise InvalidInput(f"url: must be {served}, not {url!r}") from None
    if endpoint is not None and line_endpoint is not endpoint:
        raise InvalidInput(f"url: every line of this batch must be for its endpoint {endpoint.value}, not {url}")
    request = parse_openai_request(line_endpoint, item.get("body"))
    if request.stream:
        raise InvalidInput("stream: a batch line's answer is not streamed")
    if len(request.generations) > 1:
        raise InvalidInput(
            f"prompt: a batch line takes one prompt (got {len(request.generations)}): one line per prompt",
            field="prompt",
        )
    return request.params
