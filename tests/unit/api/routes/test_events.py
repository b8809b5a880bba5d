"""GET /jobs/<id>/events: a job's events as Server-Sent Events, ending with the finished job."""

from __future__ import annotations

import json


def events_of(body: str) -> list[tuple[str, str, dict]]:
    """(id, event, data) of each SSE frame that carries data."""
    frames = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":") and ": " in line)
        if "data" in fields:
            frames.append((fields.get("id", ""), fields["event"], json.loads(fields["data"])))
    return frames


def test_a_finished_jobs_stream_replays_its_statuses_and_ends_with_the_job(answering_api):
    job_id = answering_api.client.post("/jobs", json={"prompt": "Hi"}, headers=answering_api.headers).get_json()["id"]
    response = answering_api.client.get(f"/jobs/{job_id}/events", headers=answering_api.headers)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    frames = events_of(response.get_data(as_text=True))
    statuses = [data["status"] for _, event, data in frames if event == "status"]
    assert statuses[-1] == "succeeded" and "running" in statuses
    assert frames[-1][1] == "completed" and frames[-1][2]["output"]["text"] == "Bonjour"


def test_a_resumed_stream_sends_only_what_came_after_the_last_event_id(answering_api):
    job_id = answering_api.client.post("/jobs", json={"prompt": "Hi"}, headers=answering_api.headers).get_json()["id"]
    first = events_of(answering_api.client.get(f"/jobs/{job_id}/events", headers=answering_api.headers).get_data(True))
    ids = [event_id for event_id, _, _ in first if event_id]
    resumed = answering_api.client.get(
        f"/jobs/{job_id}/events", headers=answering_api.headers | {"Last-Event-ID": ids[0]}
    ).get_data(as_text=True)
    resumed_ids = [event_id for event_id, _, _ in events_of(resumed) if event_id]
    assert resumed_ids == ids[1:]


def test_an_unknown_job_has_no_stream(api):
    assert api.client.get("/jobs/" + "0" * 32 + "/events", headers=api.headers).status_code == 404
