"""A text completion with several prompts: a job per prompt, answered together; nothing left behind when refused."""

from __future__ import annotations

import pytest

from api.several_prompts import prompt_keys
from core.errors import InvalidInput
from core.jobs.idempotency import MAX_KEY_CHARS


def complete(api, body: dict, **headers: str):
    return api.client.post("/v1/completions", json=body, headers=api.headers | headers)


def test_each_prompt_is_claimed_under_the_key_and_its_index():
    assert prompt_keys(None, 3) == [None, None, None]
    assert prompt_keys("retry-me", 2) == ["retry-me/0", "retry-me/1"]
    assert prompt_keys("k" * (MAX_KEY_CHARS - 2), 2)  # "/1" still fits
    with pytest.raises(InvalidInput) as caught:
        prompt_keys("k" * (MAX_KEY_CHARS - 2), 11)  # "/10" would not
    assert caught.value.field == "Idempotency-Key"


def test_several_prompts_are_a_job_each_answered_together_in_prompt_order(answering_api):
    answer = complete(answering_api, {"model": "m", "prompt": ["Once", "Twice", "Thrice"], "max_tokens": 4})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    jobs = answering_api.queue.job_ids
    assert len(jobs) == 3
    assert body["id"] == f"cmpl-{jobs[0]}"
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    assert [choice["text"] for choice in body["choices"]] == ["Bonjour"] * 3
    # Every job's usage, added up (each job here: 3 prompt tokens, 2 generated).
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
    prompts = [answering_api.store.get(job_id).input.prompt for job_id in jobs]
    assert prompts == ["Once", "Twice", "Thrice"]


def test_a_prompt_refused_midway_names_itself_and_cancels_the_jobs_queued_before_it(make_api):
    api = make_api(max_prompt_chars=10)
    answer = complete(api, {"prompt": ["short", "far too long a prompt"]})
    assert answer.status_code == 400
    assert "prompt 1" in answer.get_json()["error"]["message"]
    (first,) = api.queue.job_ids
    assert api.store.get(first).status == "canceled"


def test_with_an_idempotency_key_a_retry_is_answered_by_the_same_jobs(answering_api):
    body = {"prompt": ["Once", "Twice"], "max_tokens": 4}
    first = complete(answering_api, body, **{"Idempotency-Key": "batch-7"}).get_json()
    again = complete(answering_api, body, **{"Idempotency-Key": "batch-7"}).get_json()
    assert first["id"] == again["id"] and len(answering_api.queue.job_ids) == 2
    other = complete(answering_api, {"prompt": ["Once", "Other"]}, **{"Idempotency-Key": "batch-7"})
    assert other.status_code == 400  # the key's second prompt was another body


def test_the_room_for_every_prompt_is_checked_before_any_job_is_made(make_api):
    api = make_api(max_queued_per_key=2)
    answer = complete(api, {"prompt": ["a", "b", "c"]})
    assert answer.status_code == 429
    assert api.queue.job_ids == []
