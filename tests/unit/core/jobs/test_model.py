"""The job's status table, the validation of a generation request (`GenerationInput.parse` then `within_limits`,
the path every submission takes) and the typed input as stored."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput
from core.jobs.model import (
    ALLOWED_TRANSITIONS,
    GenerationInput,
    Job,
    JobInput,
    JobStatus,
    check_metadata,
    is_job_id,
    new_job_id,
    parse_iso,
    utc_now_iso,
    within_limits,
)


def parse(body, *, max_tokens_limit: int = 256, max_prompt_chars: int = 100):
    return within_limits(
        GenerationInput.parse(body), max_tokens_limit=max_tokens_limit, max_prompt_chars=max_prompt_chars
    )


def test_terminal_statuses_have_no_way_out_and_the_others_lead_somewhere():
    for status in JobStatus:
        assert (ALLOWED_TRANSITIONS[status] == frozenset()) is status.is_terminal
    assert JobStatus.QUEUED in ALLOWED_TRANSITIONS[JobStatus.RUNNING]  # a dead worker's job is requeued
    assert JobStatus.SUCCEEDED not in ALLOWED_TRANSITIONS[JobStatus.QUEUED]


def test_job_ids_are_32_hex_digits_and_times_round_trip():
    assert is_job_id(new_job_id()) and not is_job_id("../etc") and not is_job_id("A" * 32)
    now = utc_now_iso()
    assert now.endswith("Z") and parse_iso(now).isoformat(timespec="microseconds").startswith(now[:-1])


def test_the_default_max_tokens_shrinks_to_a_smaller_limit_but_an_explicit_one_is_refused():
    assert parse({"prompt": "x"}, max_tokens_limit=16).max_tokens == 16
    with pytest.raises(InvalidInput, match="max_tokens: must be at most 16") as refused:
        parse({"prompt": "x", "max_tokens": 17}, max_tokens_limit=16)
    assert refused.value.field == "max_tokens"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, None, "exactly one of `prompt`"),
        ({"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, None, "exactly one of"),
        ({"prompt": "x", "temperature": 0.001}, "temperature", "0 (greedy) or at least 0.01"),
        ({"prompt": "x", "stop": [""]}, "stop", "1 to 256 characters"),
        ({"prompt": "x", "metadata": {"k": 1}}, "metadata.k", "valid string"),
        ({"prompt": "x", "metadata": {"k" * 65: "v"}}, "metadata", "at most 64 characters"),
        ({"prompt": "x" * 101}, "prompt", "longer than 100 characters"),
        ({"messages": [{"role": "user", "content": "y" * 101}]}, "prompt", "longer than 100"),
        ({"prompt": "x", "webhook_events": []}, "webhook_events", ""),
        ({"prompt": "x", "presence_penalty": 2.1}, "presence_penalty", "less than or equal to 2"),
        ({"prompt": "x", "frequency_penalty": -2.5}, "frequency_penalty", "greater than or equal to -2"),
        ({"prompt": "x", "frequency_penalty": "high"}, "frequency_penalty", "valid number"),
        ({"prompt": "x", "min_tokens": -1}, "min_tokens", "greater than or equal to 0"),
        ({"prompt": "x", "max_tokens": 4, "min_tokens": 5}, "min_tokens", "at most max_tokens (4)"),
        ({"prompt": "x", "min_tokens": 20}, "min_tokens", "at most max_tokens (16)"),
        ({"prompt": "x", "stop_token_ids": [1, -2]}, "stop_token_ids.1", "greater than or equal to 0"),
        ({"prompt": "x", "stop_token_ids": list(range(65))}, "stop_token_ids", "at most 64"),
        ({"prompt": "x", "n": 17}, "n", "less than or equal to 16"),
        ({"prompt": "x", "n": 0}, "n", "greater than or equal to 1"),
    ],
)
def test_a_bad_field_is_refused_naming_it(body, field, words):
    with pytest.raises(InvalidInput) as refused:
        parse(body, max_tokens_limit=16 if "min_tokens" in body else 256)
    assert refused.value.field == field and words in refused.value.message


def test_sampling_rules_are_stored_when_given_and_absent_otherwise():
    rules = {"presence_penalty": 1, "frequency_penalty": -0.5, "min_tokens": 2, "stop_token_ids": [5]}
    stored = parse({"prompt": "x", **rules}).job_input.stored()
    assert {name: stored[name] for name in rules} == rules
    assert not set(rules) & set(parse({"prompt": "x", "stop_token_ids": []}).job_input.stored())


def test_stop_may_be_one_string_and_events_are_deduplicated_in_order():
    params = parse({"prompt": "x", "stop": "END", "webhook_events": ["completed", "started", "completed"]})
    assert params.stop == ["END"] and params.webhook_events == ["started", "completed"]


def test_metadata_limits():
    assert check_metadata({"k": "v"}) == {"k": "v"}
    with pytest.raises(InvalidInput, match="at most 16 keys"):
        check_metadata({str(n): "v" for n in range(17)})
    with pytest.raises(InvalidInput, match="at most 64 characters"):
        check_metadata({"k" * 65: "v"})


def test_the_public_view_of_a_stored_job_leaves_out_its_owner(new_job):
    view = new_job(owner="secret-owner").public_view()
    assert "owner" not in view and view["status"] == "queued"


# A job as the store held it before the input was typed.
STORED = {
    "id": "a" * 32,
    "status": "queued",
    "created_at": "2025-01-01T00:00:00.000000Z",
    "input": {"prompt": "x", "max_tokens": 8, "temperature": 0.0, "top_p": 0.9, "do_sample": True, "seed": 3,
              "ignore_eos": False},
}  # fmt: skip


def test_a_stored_job_loads_with_a_typed_input_and_dumps_the_same_json():
    job = Job.model_validate_json(json.dumps(STORED))
    assert isinstance(job.input, JobInput) and job.input.seed == 3 and job.input.top_k is None
    assert job.public_view()["input"] == STORED["input"]
    assert json.loads(job.model_dump_json())["input"] == STORED["input"]


def test_a_job_stores_the_generation_without_its_labels_or_delivery():
    params = GenerationInput.parse(
        {"messages": [{"role": "user", "content": "hi"}], "stop": "\n", "metadata": {"k": "v"}, "priority": "low"}
    )
    job = Job(id="b" * 32, status=JobStatus.QUEUED, created_at=utc_now_iso(), input=params.job_input)
    assert type(job.input) is JobInput
    assert job.public_view()["input"] == {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 128,
        "temperature": 0.7,
        "top_p": 0.9,
        "do_sample": True,
        "stop": ["\n"],
        "ignore_eos": False,
    }


def test_the_default_length_fits_a_smaller_limit_but_an_asked_one_must():
    assert (
        within_limits(GenerationInput.parse({"prompt": "x"}), max_tokens_limit=50, max_prompt_chars=9).max_tokens == 50
    )
    with pytest.raises(InvalidInput) as caught:
        within_limits(GenerationInput.parse({"prompt": "x", "max_tokens": 51}), max_tokens_limit=50, max_prompt_chars=9)
    assert caught.value.field == "max_tokens"
    with pytest.raises(InvalidInput) as caught:
        within_limits(GenerationInput.parse({"prompt": "x" * 10}), max_tokens_limit=50, max_prompt_chars=9)
    assert caught.value.field == "prompt"


def test_a_bad_body_names_its_field():
    with pytest.raises(InvalidInput) as caught:
        GenerationInput.parse({"prompt": "x", "temperature": 0.001})
    assert (
        caught.value.field == "temperature"
        and caught.value.message == "temperature: must be 0 (greedy) or at least 0.01"
    )
    with pytest.raises(InvalidInput) as caught:
        GenerationInput.parse({"prompt": "x", "surprise": 1})
    assert caught.value.message == "surprise: Extra inputs are not permitted"


def test_n_is_stored_only_above_one():
    assert "n" not in parse({"prompt": "x", "n": 1}).job_input.stored()
    assert parse({"prompt": "x", "n": 4}).job_input.stored()["n"] == 4
    assert parse({"prompt": "x"}).choice_count == 1 and parse({"prompt": "x", "n": 4}).choice_count == 4
