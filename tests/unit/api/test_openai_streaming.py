"""A streamed OpenAI answer: chunks as server-sent events ending with [DONE]; a timeout ends it with an error."""

from __future__ import annotations

import json

COMPLETION = {"model": "m", "prompt": "Hi", "stream": True}


def data_lines(response) -> list[str]:
    return [block.removeprefix("data: ") for block in response.get_data(as_text=True).split("\n\n") if block]


def test_a_streamed_text_completion_sends_the_text_then_done(answering_api):
    response = answering_api.client.post("/v1/completions", json=COMPLETION, headers=answering_api.headers)
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    lines = data_lines(response)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks if chunk["choices"]) == "Bonjour"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_stream_whose_job_does_not_finish_in_time_ends_with_an_error_and_the_job_goes_on(make_api):
    api = make_api(sync_wait_seconds=0.5)
    lines = data_lines(api.client.post("/v1/completions", json=COMPLETION, headers=api.headers))
    errors = [json.loads(line)["error"] for line in lines if line != "[DONE]" and "error" in json.loads(line)]
    assert errors and "did not finish" in errors[0]["message"]
    assert api.store.get(api.queue.job_ids[0]).status == "queued"
