"""A job's response_format: its shapes, its size bound, and the compile check that refuses what can't be enforced."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput, SchemaUnsupported
from core.jobs.model import GenerationInput, JobInput, within_limits
from core.jobs.response_format import MAX_SCHEMA_CHARS, MAX_SCHEMA_DEPTH, ResponseFormat, check_enforceable, grammar_of


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def submitted(**fields) -> GenerationInput:
    """A body through the path every submission takes: parse, then the deployment's checks."""
    return within_limits(GenerationInput.parse({"prompt": "x", **fields}), max_tokens_limit=512, max_prompt_chars=1000)


def test_a_schema_job_is_stored_in_the_shape_it_was_sent_and_read_back_by_the_worker():
    sent = schema_format({"type": "object", "properties": {"a": {"const": None}}})
    sent["json_schema"]["strict"] = True
    stored = submitted(response_format=sent).job_input.stored()
    assert stored["response_format"] == sent
    read_back = JobInput.model_validate(json.loads(json.dumps(stored)))
    assert read_back.response_format == ResponseFormat.model_validate(sent)


def test_text_adds_no_grammar_and_json_object_means_any_object():
    assert grammar_of(ResponseFormat(type="text")) is None
    assert ResponseFormat(type="json_object").schema() == {"type": "object"}
    check_enforceable(ResponseFormat(type="json_object"))


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum (5) is greater than maximum (1)"),
        ({"type": "string", "pattern": "(?=a)b"}, "look-around"),
        ({"$ref": "#/definitions/missing"}, "does not exist"),
        ({"type": "string", "format": "no-such-format"}, "Unknown format"),
        ({"type": "strange"}, "strange"),
    ],
)
def test_a_schema_that_cant_be_compiled_is_refused_at_submit_naming_the_problem(schema, says):
    with pytest.raises(SchemaUnsupported) as refused:
        submitted(response_format=schema_format(schema))
    assert refused.value.field == "response_format.json_schema.schema"
    assert says in refused.value.message


ANY_OBJECT = {"type": "json_object"}
OBJECT_WITH_SCHEMA = ANY_OBJECT | {"json_schema": {"name": "a", "schema": {}}}


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"response_format": {"type": "json_schema"}}, "response_format", "needs `json_schema"),
        ({"response_format": OBJECT_WITH_SCHEMA}, "response_format", "only with"),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "json_object"),
        ({"response_format": schema_format({}) | {"json_schema": {"name": "a b", "schema": {}}}},
         "response_format.json_schema.name", "pattern"),
        ({"response_format": schema_format([])}, "response_format.json_schema.schema", ""),
        ({"response_format": ANY_OBJECT, "ignore_eos": True}, "response_format", "ignore_eos"),
        ({"response_format": ANY_OBJECT, "stop": ["}"]}, "response_format", "stop"),
        ({"response_format": ANY_OBJECT, "stop_token_ids": [3]}, "response_format", "stop_token_ids"),
        ({"response_format": ANY_OBJECT, "min_tokens": 4}, "response_format", "min_tokens"),
    ],
)  # fmt: skip
def test_bad_shapes_and_combinations_that_could_not_end_are_invalid_input(fields, field, says):
    with pytest.raises(InvalidInput) as refused:
        submitted(**fields)
    assert not isinstance(refused.value, SchemaUnsupported)
    assert refused.value.field == field and says in refused.value.message


def test_text_combines_with_everything():
    assert submitted(response_format={"type": "text"}, ignore_eos=True, stop=["}"]).ignore_eos


def test_schemas_past_the_size_or_depth_bound_are_refused_before_compiling():
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(MAX_SCHEMA_CHARS // 20)}}
    deep: dict = {"type": "integer"}
    for _ in range(MAX_SCHEMA_DEPTH):
        deep = {"type": "array", "items": deep}
    for schema, says in ((wide, f"{MAX_SCHEMA_CHARS} characters"), (deep, f"{MAX_SCHEMA_DEPTH} levels")):
        with pytest.raises(InvalidInput) as refused:
            submitted(response_format=schema_format(schema))
        assert refused.value.field == "response_format.json_schema.schema" and says in refused.value.message
