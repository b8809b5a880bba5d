"""JSON Lines as the service and its scripts write them: one object per `\n`-ended line.

`str.splitlines` would also split at U+2028, U+0085 and the like, which JSON leaves raw inside strings, and the demo
model's random text holds them now and then.
"""

from __future__ import annotations

import json
from typing import Any


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of `text`, parsed."""
    return [json.loads(line) for line in text.split("\n") if line.strip()]
