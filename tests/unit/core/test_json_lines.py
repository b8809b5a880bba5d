"""One JSON value per line: readable UTF-8, and the line breaks JSON leaves raw are escaped."""

from __future__ import annotations

import json

from core.json_lines import one_line


def test_a_value_stays_one_line_for_every_reader_and_reads_back_the_same():
    value = {"text": "một\u2028hai\u2029ba\x85bốn\nnăm", "n": 1}
    line = one_line(value)
    assert line.splitlines() == [line] and "\n" not in line  # Python's splitlines breaks at all of them
    assert "một" in line and json.loads(line) == value
