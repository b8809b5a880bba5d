"""The job's typed input (core/jobs/model.py): stored as it always was, read back as a model, held to limits."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput
from core.jobs.model import GenerationInput, Job, JobInput, JobStatus, utc_now_iso, within_limits

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
