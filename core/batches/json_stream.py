"""One JSON text read from a stream of byte chunks a value at a time, so a large array is never held whole.

The standard library's decoder only takes a complete text. Each value is decoded with `JSONDecoder.raw_decode`
from the text held (the rest of the last chunk); only a value cut short by the end of a chunk is scanned for its
end (strings, their escapes and bracket depth, across chunks), read on to there, and decoded then. What is held at
any time is the value being read and the rest of the last chunk. Every error names where it is (line, column and
character of the whole text), as `json` does.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from core.errors import InvalidInput

# Outside a string, the characters that open or close a value or end one; inside, those that end or escape it.
_STRUCTURE = re.compile(r'["{}\[\],:]')
_STRING_STOP = re.compile(r'["\\]')
_SPACE = re.compile(r"[ \t\r\n]*")
_AFTER_VALUE = frozenset(" \t\r\n,:]}")
_DECODER = json.JSONDecoder()


class _ValueEnd:
    """Finds the end of one value, fed a piece of text at a time: the first `,`, `:` or closing bracket at depth 0
    outside a string. Brackets are only counted, not matched: a mismatched one is `raw_decode`'s to report."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the piece ended just after a backslash inside a string

    def feed(self, text: str, index: int) -> int | None:
        """Where the value's delimiter is in `text` (searched from `index`), or None when it is not there yet."""
        while True:
            if self.in_string:
                if self.escaped:
                    if index >= len(text):
                        return None
                    index += 1
                    self.escaped = False
                stop = _STRING_STOP.search(text, index)
                if stop is None:
                    return None
                index = stop.end()
                if stop.group() == "\\":
                    self.escaped = True
                else:
                    self.in_string = False
                continue
            mark = _STRUCTURE.search(text, index)
            if mark is None:
                return None
            char = mark.group()
            index = mark.end()
            if char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth += 1
            elif self.depth == 0:
                return mark.start()
            elif char in "}]":
                self.depth -= 1


class JsonStream:
    """A JSON text over byte chunks (UTF-8, an optional byte order mark): read it token by token, value by value."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._pos = 0
        self._ended = False
        self._started = False
        # Where self._text starts in the whole text, to name positions: characters, lines and the column.
        self._dropped_chars = 0
        self._dropped_lines = 0
        self._dropped_column = 0

    def peek(self) -> str:
        """The next character after whitespace, not consumed; "" at the end of the text."""
        while True:
            self._pos = _SPACE.match(self._text, self._pos).end()
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._more():
                return ""

    def take(self, char: str, expected: str) -> None:
        """Consume `char` (after whitespace), or refuse the body saying what was `expected` there."""
        if self.peek() != char:
            raise self.error(f"expected {expected}")
        self._pos += 1

    def value(self, where: str = "") -> Any:
        """The next value, decoded; `where` names it in an error (e.g. "in the batch's line 3")."""
        self.peek()
        try:
            value, end = _DECODER.raw_decode(self._text, self._pos)
        except RecursionError:
            raise self.error("nested too deeply", where) from None
        except json.JSONDecodeError:
            pass  # perhaps only cut short by the end of what is held: scan for its end, then decode it again
        else:
            # Whole only when what follows can't go on with it: "1." of "1.5" or "1" of "12" decodes too.
            if end < len(self._text) and self._text[end] in _AFTER_VALUE:
                self._pos = end
                return value
        self._gather_value()
        try:
            value, self._pos = _DECODER.raw_decode(self._text, self._pos)
        except RecursionError:
            raise self.error("nested too deeply", where) from None
        except json.JSONDecodeError as error:
            raise self.error(error.msg, where, at=error.pos) from None
        return value

    def end(self, after: str) -> None:
        """Refuse anything but whitespace after the value just read (reading the rest of the body)."""
        if self.peek():
            raise self.error(f"extra data after {after}")

    def error(self, reason: str, where: str = "", *, at: int | None = None) -> InvalidInput:
        """The body refused as not valid JSON, naming where (the character at `at` in the text held, or the next)."""
        index = self._pos if at is None else at
        newlines = self._text.count("\n", 0, index)
        line = self._dropped_lines + newlines + 1
        column = index - self._text.rfind("\n", 0, index) if newlines else self._dropped_column + index + 1
        place = f"line {line} column {column} (character {self._dropped_chars + index})"
        if index >= len(self._text) and self._ended:
            place = f"the end of the body, {place}"
        return InvalidInput(f"the body is not valid JSON: {reason}: {place}{', ' + where if where else ''}")

    def _gather_value(self) -> None:
        """Read on until the text held has the whole value at the position (or the body ends): the next `,`, `:`
        or closing bracket after it, outside strings and brackets."""
        scanner = _ValueEnd()
        if scanner.feed(self._text, self._pos) is not None:
            return
        # Gather the next pieces and join them once: text += piece would copy a long value again for each piece.
        self._drop(self._pos)
        pieces = [self._text]
        while (piece := self._next_piece()) is not None:
            pieces.append(piece)
            if scanner.feed(piece, 0) is not None:
                break
        self._text = "".join(pieces)

    def _more(self) -> bool:
        """Read the next piece into the text held, dropping what was read; False at the end of the body."""
        piece = self._next_piece()
        if piece is None:
            return False
        self._drop(self._pos)
        self._text += piece
        return True

    def _next_piece(self) -> str | None:
        for chunk in self._chunks:
            piece = self._decoder.decode(chunk)
            if not self._started and piece:
                piece = piece.removeprefix("\ufeff")  # a byte order mark is not part of the text
                self._started = True
            if piece:
                return piece
        if self._ended:
            return None
        self._ended = True
        return self._decoder.decode(b"", final=True) or None

    def _drop(self, upto: int) -> None:
        newlines = self._text.count("\n", 0, upto)
        if newlines:
            self._dropped_lines += newlines
            self._dropped_column = upto - self._text.rfind("\n", 0, upto) - 1
        else:
            self._dropped_column += upto
        self._dropped_chars += upto
        self._text = self._text[upto:]
        self._pos -= upto


def array_items(stream: JsonStream, name: str) -> Iterator[Any]:
    """The items of the array at the stream's position, one at a time (the array itself is never built)."""
    stream.take("[", f"{name} to be a list")
    if stream.peek() == "]":
        stream.take("]", "]")
        return
    number = 0
    while True:
        number += 1
        yield stream.value(f"in the batch's line {number}")
        if stream.peek() == ",":
            stream.take(",", ",")
        else:
            stream.take("]", f"',' or ']' after the batch's line {number}")
            return


def object_keys(stream: JsonStream) -> Iterator[str]:
    """The keys of the object at the stream's position; the caller reads each key's value before the next."""
    stream.take("{", "an object")
    if stream.peek() == "}":
        stream.take("}", "}")
        return
    while True:
        if stream.peek() != '"':
            raise stream.error("expected a key in double quotes")
        key = stream.value()
        stream.take(":", "':' after a key")
        yield key
        if stream.peek() == ",":
            stream.take(",", ",")
        else:
            stream.take("}", "',' or '}' after a value")
            return
