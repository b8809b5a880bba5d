"""`/openapi.json` comes from the request models and lists every route; `/docs` is Swagger UI served offline."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from api.app import create_app
from api.schemas import ErrorBody
from core.batches.model import BatchRequestLine
from core.jobs.model import ChatMessage, GenerationInput
from core.openai.protocol import OpenAIErrorBody

ROUTES = {
    "/jobs": {"get", "post"},
    "/jobs/{job_id}": {"get"},
    "/jobs/{job_id}/cancel": {"post"},
    "/jobs/{job_id}/events": {"get"},
    "/batches": {"get", "post"},
    "/batches/{batch_id}": {"get"},
    "/batches/{batch_id}/results": {"get"},
    "/batches/{batch_id}/cancel": {"post"},
    "/v1/generate": {"post"},
    "/healthz": {"get"},
    "/health": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
    "/metrics/history": {"get"},
    "/v1/chat/completions": {"post"},
    "/v1/completions": {"post"},
    "/v1/models": {"get"},
    "/v1/models/{model_id}": {"get"},
    "/v1/files": {"get", "post"},
    "/v1/files/{file_id}": {"get", "delete"},
    "/v1/files/{file_id}/content": {"get"},
    "/v1/batches": {"get", "post"},
    "/v1/batches/{batch_id}": {"get"},
    "/v1/batches/{batch_id}/cancel": {"post"},
}
# The OpenAI-compatible routes answer errors in OpenAI's shape.
OPENAI_PATHS = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/models/{model_id}"} | {
    path for path in ROUTES if path.startswith(("/v1/files", "/v1/batches"))
}


@pytest.fixture
def client(make_settings):
    return create_app(make_settings()).test_client()


@pytest.fixture
def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_document_is_openapi_3_1_with_every_route(document):
    assert document["openapi"].startswith("3.1")
    assert {path: set(item) for path, item in document["paths"].items()} == ROUTES


def test_request_schemas_are_the_validating_models(document):
    schemas = document["components"]["schemas"]
    for model in (GenerationInput, ChatMessage, BatchRequestLine):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        generated.pop("$defs", None)
        assert schemas[model.__name__] == generated
    post_jobs = document["paths"]["/jobs"]["post"]["requestBody"]["content"]
    assert post_jobs == {"application/json": {"schema": {"$ref": "#/components/schemas/GenerationInput"}}}
    batch_types = set(document["paths"]["/batches"]["post"]["requestBody"]["content"])
    assert batch_types == {"application/json", "application/jsonl", "application/x-ndjson", "application/x-jsonlines"}


def test_every_request_field_has_a_description_and_examples(document):
    schemas = document["components"]["schemas"]
    for name in ("GenerationInput", "ChatMessage", "BatchRequestLine"):
        for field_name, field_schema in schemas[name]["properties"].items():
            assert field_schema.get("description"), (name, field_name)
            if name != "BatchRequestLine" or field_name == "custom_id":
                assert field_schema.get("examples"), (name, field_name)
    fields = schemas["GenerationInput"]["properties"]
    assert "maximum number of new tokens" in fields["max_tokens"]["description"]
    assert "0 means greedy" in fields["temperature"]["description"]
    assert "cumulative probability reaches top_p" in fields["top_p"]["description"]
    assert "most likely token" in fields["do_sample"]["description"]


def test_every_error_status_answers_with_the_error_shape(document):
    seen: set[str] = set()
    for path, item in document["paths"].items():
        shape = OpenAIErrorBody if path in OPENAI_PATHS else ErrorBody
        error_ref = {"$ref": f"#/components/schemas/{shape.__name__}"}
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and (operation["operationId"], status) != ("get__readyz", "503"):
                    assert answer["content"]["application/json"]["schema"] == error_ref, (operation, status)
                    seen.add(status)
    assert {"400", "401", "404", "409", "413", "415", "422", "503", "504"} <= seen
    assert set(document["components"]["schemas"]["ErrorDetail"]["required"]) == {"type", "message"}
    assert set(document["components"]["schemas"]["OpenAIErrorDetail"]["required"]) == {
        "message",
        "type",
        "param",
        "code",
    }


def test_path_ids_are_documented_by_shape(document):
    job_id = document["paths"]["/jobs/{job_id}"]["get"]["parameters"][0]
    batch_id = document["paths"]["/batches/{batch_id}"]["get"]["parameters"][0]
    assert re.fullmatch(job_id["schema"]["pattern"], "0" * 32)
    assert re.fullmatch(batch_id["schema"]["pattern"], "batch_" + "a" * 32)


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_docs_page_uses_only_the_apps_own_assets(client, path):
    page = client.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    links = _Links()
    links.feed(html)
    assert links.urls, "the page loads no scripts or styles"
    page_url = f"http://localhost{path}"
    for url in links.urls:
        absolute = urlsplit(urljoin(page_url, url))
        assert (absolute.scheme, absolute.netloc) == ("http", "localhost"), url
        asset = client.get(absolute.path)
        assert asset.status_code == 200 and asset.get_data(), url
    assert any(url.endswith("swagger-ui-bundle.js") for url in links.urls)
    config = json.loads(re.search(r"var user_config = (\{.*?\});", html).group(1))
    assert config["url"] == "/openapi.json"
    assert config["validatorUrl"] is None  # no badge fetched from a public validator


def test_documented_routes_run_their_own_view_so_results_still_stream(make_settings, request):
    from tests.conftest import unconsumed_queue_name

    app = create_app(make_settings(gpu_queue=unconsumed_queue_name(request)))
    line = json.dumps({"custom_id": "a", "body": {"prompt": "x"}})
    batch = app.test_client().post("/batches", data=line, content_type="application/jsonl").get_json()
    path = f"/batches/{batch['id']}/results"
    with app.test_request_context(path):
        answer = app.view_functions["batches.batch_results"](batch_id=batch["id"])
        assert answer.is_streamed  # a generator, not a body read into memory first
        assert json.loads(answer.get_data())["custom_id"] == "a"
