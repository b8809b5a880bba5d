"""Strings a request may carry: no NUL characters and no lone UTF-16 surrogates, anywhere in the body.

JSON's `\\ud800` escapes decode to Python strings that can't be encoded as UTF-8 (so they could never be stored,
tokenized or sent on in a webhook), and NUL bytes cut strings short in C libraries and logs: both are refused at
the edge, naming the field that holds them.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import InvalidInput

_UNSAFE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
UNSAFE_TEXT_MESSAGE = "must not contain NUL characters or unpaired UTF-16 surrogates"


def is_safe_text(value: str) -> bool:
    """True when the string has neither NUL characters nor lone surrogates."""
    return _UNSAFE_CHARACTER.search(value) is None


def unsafe_string_path(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where the first unsafe string (a value or a key) sits in a decoded JSON value, or None.

    A bad key is reported as its container's path, since the key itself can't be written back in an answer.
    """
    if isinstance(value, str):
        return None if is_safe_text(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not is_safe_text(key):
                return path
            found = unsafe_string_path(item, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unsafe_string_path(item, (*path, str(index)))
            if found is not None:
                return found
    return None


def check_text(value: Any, *, prefix: tuple[str, ...] = ()) -> None:
    """Raise InvalidInput naming the field (dotted, as validation errors name them) of the first unsafe string."""
    path = unsafe_string_path(value, prefix)
    if path is None:
        return
    field = ".".join(path) or None
    message = f"{field}: {UNSAFE_TEXT_MESSAGE}" if field else f"a field name {UNSAFE_TEXT_MESSAGE}"
    raise InvalidInput(message, field=field)
