"""POST /v1/generate: submit and wait for the job, over the in-process app."""

from __future__ import annotations

from core.jobs.model import JobStatus
from core.jobs.records import JobError
from tests.unit.api.conftest import HAND_WORKER


def test_the_answer_carries_the_jobs_text_and_usage(answering_api):
    response = answering_api.client.post(
        "/v1/generate", json={"prompt": "Hi", "max_tokens": 2}, headers=answering_api.headers
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["generated_text"] == body["text"] == "Bonjour"
    assert body["finish_reason"] == "stop" and body["usage"]["total_tokens"] == 5
    assert answering_api.queue.job_ids == [body["id"]]


def test_a_job_that_does_not_finish_in_time_is_504_naming_it(make_api):
    api = make_api(sync_wait_seconds=0.3)
    response = api.client.post("/v1/generate", json={"prompt": "Hi"}, headers=api.headers)
    assert response.status_code == 504
    job_id = api.queue.job_ids[0]
    assert response.headers["Location"] == f"/jobs/{job_id}"
    assert response.get_json()["error"]["job_id"] == job_id


def test_a_failed_job_answers_500_and_an_input_the_model_refused_422(make_api):
    api = make_api(sync_wait_seconds=2)

    def fail_with(error_type: str):
        def publish(job_ids, priority):
            job = api.store.transition(job_ids[0], JobStatus.RUNNING, lambda j: setattr(j, "worker", HAND_WORKER))

            def failed(job, _cancel):
                job.error = JobError(type=error_type, message="it went wrong")
                return JobStatus.FAILED

            api.store.record_outcome(job.id, job.attempts, failed)

        api.queue.publish = publish

    fail_with("generation_error")
    assert api.client.post("/v1/generate", json={"prompt": "Hi"}, headers=api.headers).status_code == 500
    fail_with("invalid_input")
    assert api.client.post("/v1/generate", json={"prompt": "Hi"}, headers=api.headers).status_code == 422
