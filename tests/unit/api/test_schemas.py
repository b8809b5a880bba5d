"""The documented response models describe what the routes answer."""

from __future__ import annotations

from api import schemas
from core.openai.protocol import ModelList, OpenAIErrorBody


def test_probes_and_listings_validate_against_their_models(answering_api):
    client, headers = answering_api.client, answering_api.headers
    schemas.Health.model_validate(client.get("/healthz").get_json())
    schemas.Readiness.model_validate(client.get("/readyz").get_json())
    job_id = client.post("/jobs", json={"prompt": "Hi"}, headers=headers).get_json()["id"]
    schemas.JobPage.model_validate(client.get("/jobs", headers=headers).get_json())
    generated = client.post("/v1/generate", json={"prompt": "Hi"}, headers=headers).get_json()
    schemas.GenerateResult.model_validate(generated)
    ModelList.model_validate(client.get("/v1/models", headers=headers).get_json())
    assert job_id


def test_an_error_answer_validates_against_the_error_model(api):
    schemas.ErrorBody.model_validate(api.client.get("/jobs/" + "0" * 32, headers=api.headers).get_json())
    openai = api.client.get("/v1/models/unknown", headers=api.headers).get_json()
    OpenAIErrorBody.model_validate(openai)
