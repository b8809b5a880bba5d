"""A job's `response_format`: plain text, any JSON object, or JSON that follows a schema, and its grammar.

The schema is compiled here, in the API process, with llguidance and no tokenizer (a few milliseconds): a schema it
can't enforce is refused at submit (SchemaUnsupported, 422), so the worker never meets one it can't compile. The
worker compiles the same grammar again against the model's tokenizer (worker/grammar.py).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from llguidance import LLMatcher
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import SchemaUnsupported

# A schema is at most this many characters of compact JSON: it is stored with the job and compiled twice.
MAX_SCHEMA_CHARS = 32_768
# JSON nested deeper than this is refused before it is compiled (a schema is a tree; real ones are shallow).
MAX_SCHEMA_DEPTH = 32
# Compact JSON, no free whitespace between tokens: a model can't pad its answer with blank lines forever, and the
# text is the shape clients expect from OpenAI. A schema's own `x-guidance` options may change it.
_COMPILE_DEFAULTS = {"whitespace_flexible": False}
# What `json_object` means: any JSON object.
_ANY_OBJECT = {"type": "object"}


class JsonSchemaSpec(BaseModel):
    """OpenAI's `json_schema`: a named schema the text must follow."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_by_name=True, serialize_by_alias=True)

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The schema's name (letters, digits, `_` and `-`, up to 64).",
        examples=["person"],
    )
    description: str | None = Field(None, max_length=1024, description="What the answer is for (not enforced).")
    # `schema` shadows a BaseModel attribute, so the field has another name in Python.
    json_schema: dict[str, Any] = Field(
        alias="schema",
        description=f"A JSON Schema (at most {MAX_SCHEMA_CHARS} characters); every text generated follows it.",
        examples=[{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}],
    )
    strict: bool | None = Field(
        None, description="Accepted for OpenAI clients: the schema is always enforced, strict or not."
    )

    @field_validator("json_schema")
    @classmethod
    def _schema_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_size(value)
        return value


class ResponseFormat(BaseModel):
    """What shape the text takes: `text` (anything), `json_object` (a JSON object) or `json_schema`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    type: Literal["text", "json_object", "json_schema"] = Field(
        description="`text`: no constraint; `json_object`: the text is one JSON object; `json_schema`: the text is "
        "JSON that validates against `json_schema.schema`.",
        examples=["json_schema"],
    )
    json_schema: JsonSchemaSpec | None = Field(None, description="The schema, with `type: json_schema` only.")

    @model_validator(mode="after")
    def _spec_only_for_schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("`type: json_schema` needs `json_schema: {name, schema}`")
        if self.type != "json_schema" and self.json_schema is not None:
            raise ValueError(f"`json_schema` goes only with `type: json_schema` (got `type: {self.type}`)")
        return self

    @property
    def constrains(self) -> bool:
        """The text must be JSON (anything but `text`)."""
        return self.type != "text"

    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema the text follows; None for `text`."""
        if self.type == "json_schema" and self.json_schema is not None:
            return self.json_schema.json_schema
        return _ANY_OBJECT if self.type == "json_object" else None


def grammar_of(response_format: ResponseFormat) -> str | None:
    """llguidance's grammar for this format (None for `text`); it may still be invalid: see check_enforceable."""
    schema = response_format.schema()
    if schema is None:
        return None
    return LLMatcher.grammar_from_json_schema(schema, defaults=_COMPILE_DEFAULTS)


def check_enforceable(response_format: ResponseFormat | None) -> None:
    """Raise SchemaUnsupported, naming the problem, for a schema llguidance can't compile (and so can't enforce)."""
    if response_format is None or not response_format.constrains:
        return
    try:
        grammar = grammar_of(response_format)
        problem = LLMatcher.validate_grammar(grammar) if grammar is not None else ""
    except (ValueError, TypeError, RuntimeError) as error:
        problem = str(error)
    if problem:
        raise SchemaUnsupported(
            f"response_format.json_schema.schema: can't be enforced: {problem.strip()}",
            field="response_format.json_schema.schema",
        )


def check_size(schema: dict[str, Any]) -> None:
    """Raise ValueError for a schema too large to take (it is stored with the job and compiled twice)."""
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_SCHEMA_DEPTH} levels")
    if len(json.dumps(schema, separators=(",", ":"))) > MAX_SCHEMA_CHARS:
        raise ValueError(f"longer than {MAX_SCHEMA_CHARS} characters as compact JSON")


def _depth(value: Any) -> int:
    """How deeply JSON data nests (a scalar is 0), counted without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_SCHEMA_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest
