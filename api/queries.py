"""The query strings the routes read: each is a model that validates it and that the OpenAPI document shows.

A bad query string is InvalidInput naming the parameter, in the words each route has always used.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from flask import request
from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic_core import PydanticCustomError

from core.batches.model import BATCH_ID_PATTERN
from core.errors import invalid_input_from
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

    @classmethod
    def read(cls: type[Q]) -> Q:
        """The current request's query string (the first value of a repeated parameter)."""
        try:
            return cls.model_validate(request.args.to_dict())
        except ValidationError as error:
            raise invalid_input_from(error, field_messages=cls.messages, told_first=cls.told_first) from None


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
