"""The extraction batch: 1,000 prompts whose answers must follow one schema, sent with `scripts/submit_batch.py`.

    python -m bench.schema_batch write DIR [--lines 1000]   # DIR/extract.jsonl and DIR/ticket.schema.json
    llmq-submit-batch DIR/extract.jsonl DIR/out.jsonl --json-schema DIR/ticket.schema.json --max-tokens 96
    python -m bench.schema_batch check DIR/out.jsonl DIR/ticket.schema.json

`check` parses every result's text and validates it against the schema (jsonschema-rs), and prints the counts.
The schema has bounded strings, enums and integer ranges, so even the random-weight demo model ends within 96 tokens.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "customer": {"type": "string", "maxLength": 24},
        "product": {"enum": ["router", "laptop", "phone", "printer", "tv"]},
        "severity": {"enum": ["low", "medium", "high", "critical"]},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 50},
        "refund": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["billing", "shipping", "defect", "other"]}, "maxItems": 3},
    },
    "required": ["customer", "product", "severity", "quantity", "refund"],
    "additionalProperties": False,
}
_NAMES = ["Nguyễn Văn An", "Trần Thị Bình", "Alice Martin", "Bob Chen", "Lê Minh", "Carol Diaz"]
_PRODUCTS = ["router", "laptop", "phone", "printer", "tv"]
_PROBLEMS = ["arrived broken", "was charged twice", "never arrived", "stops after an hour", "is the wrong model"]


def write(folder: Path, lines: int) -> None:
    """The batch's input (half native lines, half OpenAI chat lines) and its schema file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(23)
    with (folder / "extract.jsonl").open("w", encoding="utf-8") as out:
        for number in range(lines):
            ticket = (
                f"Ticket from {rng.choice(_NAMES)}: my {rng.choice(_PRODUCTS)} {rng.choice(_PROBLEMS)}; "
                f"I ordered {rng.randint(1, 9)}. Extract customer, product, severity, quantity, refund and tags "
                "as JSON."
            )
            if number % 2:
                line = {"custom_id": f"t{number}", "body": {"prompt": ticket}}
            else:
                body = {"messages": [{"role": "user", "content": ticket}]}
                line = {"custom_id": f"t{number}", "method": "POST", "url": "/v1/chat/completions", "body": body}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    (folder / "ticket.schema.json").write_text(json.dumps(TICKET_SCHEMA, indent=1), encoding="utf-8")


def check(results: Path, schema_file: Path) -> Counter:
    """Count the result lines: succeeded, finished with `stop`, parsed as JSON, valid against the schema."""
    import jsonschema_rs

    validator = jsonschema_rs.validator_for(json.loads(schema_file.read_text(encoding="utf-8")))
    counts: Counter = Counter()
    for raw in results.read_text(encoding="utf-8").splitlines():
        result = json.loads(raw)
        counts["lines"] += 1
        output = result.get("output") or {}
        counts[f"status {result['status']}"] += 1
        counts[f"finish_reason {output.get('finish_reason')}"] += 1
        try:
            value = json.loads(output.get("text", ""))
        except ValueError:
            continue
        counts["parsed"] += 1
        counts["valid"] += validator.is_valid(value)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    writing = commands.add_parser("write")
    writing.add_argument("folder", type=Path)
    writing.add_argument("--lines", type=int, default=1000)
    checking = commands.add_parser("check")
    checking.add_argument("results", type=Path)
    checking.add_argument("schema", type=Path)
    args = parser.parse_args()
    if args.command == "write":
        write(args.folder, args.lines)
        return 0
    counts = check(args.results, args.schema)
    print(json.dumps(dict(sorted(counts.items()))))
    return 0 if counts["valid"] == counts["lines"] else 1


if __name__ == "__main__":
    sys.exit(main())
