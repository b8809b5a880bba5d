"""The query strings the routes read: each is a model that validates it and that the OpenAPI document shows.

A bad query string is InvalidInput naming the parameter, in the words each route has always used.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from flask import request
from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic_core import PydanticCustomError

from core.batches.model import BATCH_ID_PATTERN
from core.errors import InvalidInput, invalid_input_from
from core.events.stream import EVENT_ID_PATTERN
from core.jobs.model import JobStatus
from core.openai.files import FILE_ID_PATTERN

MAX_PAGE_SIZE = 100
# A page cursor is the sequence number of the last item seen, as the decimal string `next_cursor` gives.
CURSOR_PATTERN = r"^[0-9]{0,19}$"
_LIMIT_DIGITS = re.compile(r"[0-9]{1,3}")


def _page_limit(value: Any) -> Any:
    """The one rule for a page's size: a whole number from 1 to MAX_PAGE_SIZE."""
    if isinstance(value, str):
        if not _LIMIT_DIGITS.fullmatch(value):
            raise PydanticCustomError("whole_number", "must be a whole number")
        value = int(value)
    if isinstance(value, int) and not 1 <= value <= MAX_PAGE_SIZE:
        raise PydanticCustomError("page_size", "must be between 1 and {most}", {"most": MAX_PAGE_SIZE})
    return value


PageLimit = Annotated[
    int,
    Field(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1 to {MAX_PAGE_SIZE}."),
    BeforeValidator(_page_limit),
]


class Query(BaseModel):
    """A query string's model; `read` validates the request's with it."""

    # This service's words for a bad parameter, by parameter, in place of pydantic's.
    messages: ClassVar[dict[str, str]] = {}
    # When several parameters are bad, which problem is told (by field, or `field/error type`).
    told_first: ClassVar[tuple[str, ...]] = ()
    # How a message names a parameter that may come from elsewhere than the query string (the field stays its name).
    told_as: ClassVar[dict[str, str]] = {}

    @classmethod
    def read(cls: type[Q]) -> Q:
        """The current request's query string (the first value of a repeated parameter)."""
        try:
            return cls.model_validate(cls.values())
        except ValidationError as error:
            problem = invalid_input_from(error, field_messages=cls.messages, told_first=cls.told_first)
            if problem.field in cls.told_as:
                told = cls.told_as[problem.field] + problem.message.removeprefix(problem.field)
                problem = InvalidInput(told, field=problem.field)
            raise problem from None

    @classmethod
    def values(cls) -> dict[str, str]:
        """The parameters the model reads from the current request."""
        return request.args.to_dict()


Q = TypeVar("Q", bound=Query)


class PageQuery(Query):
    told_first = ("limit/whole_number", "cursor")
    messages = {"cursor": "must be a page's next_cursor (a whole number)"}

    limit: Annotated[PageLimit, Field(examples=[20])] = 20
    cursor: str = Field("", pattern=CURSOR_PATTERN, description="A page's `next_cursor`; empty for the first page.")

    @property
    def before_sequence(self) -> int | None:
        """The cursor as the sequence number to list before; None for the first page."""
        return int(self.cursor) if self.cursor else None


class JobPageQuery(PageQuery):
    told_first = ("status", *PageQuery.told_first)
    messages = {**PageQuery.messages, "status": f"must be one of {', '.join(s.value for s in JobStatus)}"}

    status: JobStatus | None = Field(None, description="Only jobs in this status.")


class ResultsQuery(Query):
    messages = {"format": "must be native or openai"}

    format: Literal["native", "openai"] = Field(
        "native",
        description="`native`: every line with its job's status; `openai`: OpenAI batch output lines of the "
        "finished lines (`id`, `custom_id`, `response` with `status_code`, `request_id` and `body`, `error`).",
    )


class OpenAIPageQuery(Query):
    messages = {
        "limit": f"must be a whole number between 1 and {MAX_PAGE_SIZE}",
        "after": "must be the id of one of your batches",
    }

    limit: PageLimit = 20
    after: str = Field(
        "",
        pattern=f"^({BATCH_ID_PATTERN.pattern})?$",
        description="The last id of the previous page (one of your listed batches); empty: the first page.",
    )


class OpenAIFileQuery(Query):
    messages = {
        "limit": f"must be a whole number between 1 and {MAX_PAGE_SIZE}",
        "after": "must be the id of one of your files",
        "purpose": "must be batch or batch_output",
        "order": "only desc (newest first) is served",
    }

    limit: PageLimit = 20
    after: str = Field(
        "",
        pattern=f"^({FILE_ID_PATTERN.pattern})?$",
        description="The last id of the previous page (one of your listed files); empty: the first page.",
    )
    purpose: Literal["batch", "batch_output"] | None = Field(None, description="Only files of this purpose.")
    order: Literal["desc"] = Field("desc", description="Newest first (the only order here).")


class BatchQuery(Query):
    webhook: str | None = Field(
        None,
        description="The batch's webhook, for a JSONL or list body (an envelope's own `webhook` wins).",
        examples=["https://example.com/hooks/batches"],
    )


class EventsQuery(Query):
    messages = {"last_event_id": "must be an event's id (`<milliseconds>-<sequence>`)"}
    # The header says it too, so the message names neither spelling.
    told_as = {"last_event_id": "last event id"}

    last_event_id: str = Field(
        "",
        pattern=f"^({EVENT_ID_PATTERN.pattern})?$",
        description="Resume after this event id (what `Last-Event-ID` says, for clients that can't send that "
        "header); empty: from the start.",
        examples=["1718000000000-0"],
    )

    @classmethod
    def values(cls) -> dict[str, str]:
        """`Last-Event-ID`, the header EventSource sends when it reconnects, wins over the parameter."""
        return {"last_event_id": request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or ""}


# A plain decimal number (what a previous answer's `timestamp` looks like), not `inf`, `nan` or `1_000`.
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _unix_time(value: Any) -> Any:
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value):
            raise PydanticCustomError("plain_number", "must be a plain decimal number")
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "must be a finite number")
    return value


class MetricsHistoryQuery(Query):
    messages = {"since": "must be a Unix time in seconds (a number, 0 or more)"}

    since: Annotated[
        float,
        Field(ge=0, description="Only samples taken after this Unix time (a previous answer's last `timestamp`)."),
        BeforeValidator(_unix_time),
    ] = 0
