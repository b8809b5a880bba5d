"""The app factory: every route family registered, the injected queue used, records written as JSON."""

from __future__ import annotations

from pydantic import BaseModel

from api.app import JsonProvider


def test_the_factory_registers_every_route_family(api):
    rules = {rule.rule for rule in api.app.url_map.iter_rules()}
    for path in ("/jobs", "/jobs/<job_id>/events", "/batches", "/v1/generate", "/healthz", "/metrics",
                 "/v1/chat/completions", "/v1/files", "/v1/batches", "/console", "/openapi.json"):  # fmt: skip
        assert path in rules, path


def test_the_app_takes_its_limits_and_queue_from_what_it_was_given(make_api):
    api = make_api(max_body_bytes=4096)
    assert api.app.config["MAX_CONTENT_LENGTH"] == 4096
    assert api.app.extensions["llm"].settings is api.settings
    too_big = api.client.post("/jobs", json={"prompt": "x" * 5000}, headers=api.headers)
    assert too_big.status_code == 413 and too_big.get_json()["error"]["type"] == "body_too_large"
    api.client.post("/jobs", json={"prompt": "fits"}, headers=api.headers)
    assert len(api.queue.published) == 1


def test_pydantic_records_are_written_as_the_json_they_dump_to(api):
    class Reading(BaseModel):
        gb: float

    assert JsonProvider.default(Reading(gb=1.5)) == {"gb": 1.5}
    with api.app.app_context():
        assert api.app.json.dumps({"r": Reading(gb=2.0), "text": "é"}) == '{"r": {"gb": 2.0}, "text": "é"}'
