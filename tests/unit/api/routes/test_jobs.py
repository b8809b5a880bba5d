"""POST/GET /jobs, a job by id and its cancel, over the in-process app."""

from __future__ import annotations

JOB = {"prompt": "Say hi", "max_tokens": 4}


def test_a_submitted_job_is_stored_queued_and_published_once(api):
    response = api.client.post("/jobs", json=JOB, headers=api.headers)
    assert response.status_code == 202
    job = response.get_json()
    assert job["status"] == "queued" and job["input"]["prompt"] == "Say hi"
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert api.queue.published == [(job["id"], "normal")]
    assert api.store.get(job["id"]).status == "queued"


def test_a_job_reads_back_by_id_and_a_malformed_or_unknown_id_is_404(api):
    job_id = api.client.post("/jobs", json=JOB, headers=api.headers).get_json()["id"]
    read = api.client.get(f"/jobs/{job_id}", headers=api.headers)
    assert read.status_code == 200 and read.get_json()["id"] == job_id
    assert api.client.get("/jobs/not-an-id", headers=api.headers).status_code == 404
    assert api.client.get("/jobs/" + "0" * 32, headers=api.headers).get_json()["error"]["type"] == "not_found"


def test_another_key_can_not_see_the_job(make_api):
    first = make_api()
    job_id = first.client.post("/jobs", json=JOB, headers=first.headers).get_json()["id"]
    second = make_api()
    assert second.client.get(f"/jobs/{job_id}", headers=second.headers).status_code == 404


def test_a_job_without_a_key_is_401_and_enqueues_nothing(api):
    assert api.client.post("/jobs", json=JOB).status_code == 401
    assert api.queue.published == []


def test_an_invalid_body_is_422_naming_the_field_and_enqueues_nothing(api):
    response = api.client.post("/jobs", json={"prompt": "x", "max_tokens": 0}, headers=api.headers)
    assert response.status_code == 422
    assert "max_tokens" in response.get_json()["error"]["message"]
    assert api.client.post("/jobs", data="{", headers=api.headers, content_type="application/json").status_code == 400
    assert api.client.post("/jobs", data="x", headers=api.headers, content_type="text/plain").status_code == 415
    assert api.queue.published == []


def test_a_full_queue_refuses_the_job_with_503_and_retry_after(make_api):
    api = make_api(max_queue_depth=2)
    api.queue.waiting = 2
    response = api.client.post("/jobs", json=JOB, headers=api.headers)
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert api.queue.published == []


def test_an_idempotency_key_returns_the_first_job_and_enqueues_once(api):
    headers = api.headers | {"Idempotency-Key": "once"}
    first = api.client.post("/jobs", json=JOB, headers=headers).get_json()
    again = api.client.post("/jobs", json=JOB, headers=headers).get_json()
    assert again["id"] == first["id"]
    assert api.queue.job_ids == [first["id"]]
    other_body = api.client.post("/jobs", json=JOB | {"prompt": "else"}, headers=headers)
    assert other_body.status_code == 422


def test_listing_is_newest_first_paged_and_filtered_by_status(api):
    ids = [api.client.post("/jobs", json=JOB, headers=api.headers).get_json()["id"] for _ in range(3)]
    page = api.client.get("/jobs?limit=2", headers=api.headers).get_json()
    assert [job["id"] for job in page["data"]] == ids[::-1][:2]
    rest = api.client.get(f"/jobs?limit=2&cursor={page['next_cursor']}", headers=api.headers).get_json()
    assert [job["id"] for job in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    assert api.client.get("/jobs?status=succeeded", headers=api.headers).get_json()["data"] == []
    assert len(api.client.get("/jobs?status=queued", headers=api.headers).get_json()["data"]) == 3


def test_bad_listing_arguments_are_422(api):
    for query in ("limit=0", "limit=101", "limit=x", "cursor=abc", "status=done", "status="):
        assert api.client.get(f"/jobs?{query}", headers=api.headers).status_code == 422, query


def test_a_queued_job_cancels_at_once_and_a_finished_one_is_409(api, answering_api):
    job_id = api.client.post("/jobs", json=JOB, headers=api.headers).get_json()["id"]
    canceled = api.client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    assert api.store.get(job_id).status == "canceled"
    done_id = answering_api.client.post("/jobs", json=JOB, headers=answering_api.headers).get_json()["id"]
    assert answering_api.client.post(f"/jobs/{done_id}/cancel", headers=answering_api.headers).status_code == 409


def test_a_running_job_gets_a_cancel_request_and_202(api):
    from core.jobs.model import JobStatus

    job_id = api.client.post("/jobs", json=JOB, headers=api.headers).get_json()["id"]
    api.store.transition(job_id, JobStatus.RUNNING, lambda job: setattr(job, "attempts", 1))
    response = api.client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert response.status_code == 202 and response.get_json()["status"] == "running"
    assert api.store.cancel_requested(job_id)
