"""One JSON value per line, as every JSON-lines file and response of the service writes it."""

from __future__ import annotations

import json
from typing import Any

# Characters JSON may carry raw inside a string but that many readers take for a line break (Python's
# splitlines, JavaScript before ES2019, some editors): written escaped, so each value stays one line for every reader.
_LINE_BREAKS_JSON_KEEPS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def one_line(value: Any) -> str:
    """`value` as JSON on one line (no newline at its end): readable UTF-8, with the line breaks JSON leaves raw
    escaped."""
    line = json.dumps(value, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS_JSON_KEEPS.items():
        line = line.replace(raw, escaped)
    return line
