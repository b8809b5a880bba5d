"""A keyless API serves only its own machine: loopback Host names (DNS rebinding reads nothing), no write from
another origin (a web page the operator visits submits nothing), batch bodies only with a declared JSON or JSONL
type, and a proxy's forwarded address believed only when TRUST_PROXY_HOPS asks for it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from api.app import create_app
from api.edge_guard import is_same_origin, split_host
from core.settings import Settings
from launcher.redis_server import RedisServer
from tests.conftest import HttpServer, service_env, start_api_server, stop_process, unconsumed_queue_name

LINE = json.dumps({"custom_id": "a", "body": {"prompt": "hi", "max_tokens": 1}})
FOREIGN = "https://evil.example"


@pytest.fixture
def keyless(make_settings, request):
    return create_app(make_settings(gpu_queue=unconsumed_queue_name(request))).test_client()


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8001", "127.0.0.1", "127.8.9.10:80", "[::1]:8001", "[::1]"])
def test_keyless_api_answers_loopback_host_names_with_any_port(keyless, host):
    assert keyless.get("/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("path", ["/jobs", "/metrics", "/metrics/history", "/readyz", "/batches", "/"])
@pytest.mark.parametrize(
    "host", ["rebind.example", "rebind.example:8001", "192.168.1.20:8001", "localhost.evil.example"]
)
def test_keyless_api_refuses_other_host_names_as_dns_rebinding_would_send(keyless, path, host):
    response = keyless.get(path, headers={"Host": host})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["type"] == "forbidden" and "ALLOWED_HOSTS" in error["message"]


def test_allowed_hosts_widens_the_keyless_api_and_keys_open_every_host_unless_it_is_set(make_settings):
    widened = create_app(make_settings(allowed_hosts="llm.lan, 10.0.0.7")).test_client()
    for host in ("llm.lan", "LLM.lan:8001", "10.0.0.7:8001", "localhost:8001"):
        assert widened.get("/jobs", headers={"Host": host}).status_code == 200, host
    assert widened.get("/jobs", headers={"Host": "other.lan"}).status_code == 403
    key = {"Authorization": "Bearer k1"}
    keyed = create_app(make_settings(api_keys=["k1"])).test_client()
    assert keyed.get("/jobs", headers={"Host": "llm.example.com", **key}).status_code == 200
    keyed_narrow = create_app(make_settings(api_keys=["k1"], allowed_hosts="llm.example.com")).test_client()
    assert keyed_narrow.get("/jobs", headers={"Host": "llm.example.com", **key}).status_code == 200
    assert keyed_narrow.get("/jobs", headers={"Host": "127.0.0.1:8001", **key}).status_code == 200
    assert keyed_narrow.get("/jobs", headers={"Host": "other.example.com", **key}).status_code == 403
    anything = create_app(make_settings(allowed_hosts="*")).test_client()
    assert anything.get("/jobs", headers={"Host": "whatever.example"}).status_code == 200


def test_a_keyless_api_serving_one_address_answers_that_name(make_settings):
    client = create_app(make_settings(api_host="10.1.2.3", allow_open_api=True)).test_client()
    assert client.get("/jobs", headers={"Host": "10.1.2.3:8001"}).status_code == 200
    assert client.get("/jobs", headers={"Host": "rebind.example:8001"}).status_code == 403


def test_allowed_hosts_are_host_names_without_ports():
    assert Settings(_env_file=None, allowed_hosts=" A.example ,[::1]").allowed_hosts == ["a.example", "::1"]
    for bad in ("a.example:8001", "http://a.example", "a/b", "a b"):
        with pytest.raises(ValidationError, match="ALLOWED_HOSTS|allowed_hosts"):
            Settings(_env_file=None, allowed_hosts=bad)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/jobs", {"json": {"prompt": "hi", "max_tokens": 1}}),
        ("POST", "/batches", {"data": LINE}),  # no Content-Type: what a page's fetch() can send without asking
        ("POST", "/batches", {"data": LINE, "content_type": "application/jsonl"}),
        ("POST", "/v1/files", {"data": {"purpose": "batch", "file": (LINE.encode(), "b.jsonl")}}),
        ("POST", "/v1/chat/completions", {"data": "{}", "content_type": "text/plain"}),
        ("POST", f"/jobs/{'ab' * 16}/cancel", {}),
        ("DELETE", "/v1/files/file-abc", {}),
    ],
)
@pytest.mark.parametrize("origin", [FOREIGN, "http://localhost:9999", "http://127.0.0.1", "null"])
def test_a_write_from_another_origin_is_refused(keyless, method, path, kwargs, origin):
    headers = {"Host": "127.0.0.1:8001", "Origin": origin}
    if "file" in kwargs.get("data", {}):  # a fresh file object for each request
        content, name = kwargs["data"]["file"]
        kwargs = {"data": {**kwargs["data"], "file": (io.BytesIO(content), name)}}
    response = keyless.open(path, method=method, headers=headers, **kwargs)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.get_json()["error"]["type"] in ("forbidden", "invalid_request_error")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_writes_from_the_services_own_origin_and_reads_from_anywhere_pass(keyless):
    own = {"Host": "localhost:8001", "Origin": "http://localhost:8001"}
    assert keyless.post("/jobs", json={"prompt": "hi", "max_tokens": 1}, headers=own).status_code == 202
    assert keyless.post("/batches", data=LINE, content_type="application/jsonl", headers=own).status_code == 202
    assert keyless.post("/jobs", json={"prompt": "hi", "max_tokens": 1}).status_code == 202  # curl: no Origin
    # A cross-origin read is answered without CORS headers, so the foreign page can't read the answer.
    read = keyless.get("/jobs", headers={"Origin": FOREIGN})
    assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read.headers
    preflight = keyless.options("/jobs", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST"})
    assert not any(name.startswith("Access-Control-") for name, _ in preflight.headers)


def test_a_batch_body_needs_a_json_or_jsonl_content_type(keyless):
    for media_type in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "text/csv"):
        response = keyless.post("/batches", data=LINE, content_type=media_type)
        assert response.status_code == 415, media_type
        assert response.get_json()["error"]["type"] == "unsupported_media_type"
    for media_type in ("application/jsonl", "application/x-ndjson", "application/x-jsonlines"):
        assert keyless.post("/batches", data=LINE, content_type=media_type).status_code == 202
    assert keyless.post("/batches", data=f"[{LINE}]", content_type="application/json").status_code == 202


def test_same_origin_compares_host_and_port_not_the_scheme():
    assert is_same_origin("http://localhost:8001", "localhost:8001")
    assert is_same_origin("https://llm.example", "llm.example")  # TLS ends at the proxy; the API hears http
    assert is_same_origin("http://[::1]:8001", "[::1]:8001")
    assert is_same_origin("https://LLM.example", "llm.example:443")
    assert not is_same_origin("http://llm.example:8080", "llm.example")
    assert not is_same_origin("http://evil.example", "llm.example")
    assert not is_same_origin("null", "llm.example")
    assert not is_same_origin("file://", "llm.example")
    assert split_host("[::1]:80") == ("::1", 80) and split_host("bad:port") == ("", None)


def test_behind_a_proxy_the_forwarded_address_counts_only_when_trusted(make_settings):
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    # Off (the default): a proxy on this machine makes every caller loopback, as docs/security.md warns.
    untrusting = create_app(make_settings()).test_client()
    assert untrusting.get("/metrics", headers=forwarded).status_code == 200
    trusting = create_app(make_settings(trust_proxy_hops=1)).test_client()
    refused = trusting.get("/metrics", headers=forwarded)
    assert refused.status_code == 403 and refused.get_json()["error"]["type"] == "forbidden"
    assert set(trusting.get("/readyz", headers=forwarded).get_json()) == {"status"}
    assert trusting.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    # A request that did not come through the proxy (no forwarded address) is no local caller either.
    assert trusting.get("/metrics").status_code == 403
    # Two proxies: the address the outer one saw, never what the client wrote in front of it.
    two = create_app(make_settings(trust_proxy_hops=2)).test_client()
    assert two.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1, 198.51.100.4, 127.0.0.1"}).status_code == 403


@pytest.fixture(scope="module")
def keyless_server(redis_server: RedisServer, tmp_path_factory, request) -> Iterator[HttpServer]:
    base: Path = tmp_path_factory.mktemp("keyless-edge")
    env = service_env(redis_server.url, base / "no-model", base / "logs", GPU_QUEUE=unconsumed_queue_name(request))
    for name in ("API_KEYS", "ADMIN_API_KEYS", "ALLOWED_HOSTS", "TRUST_PROXY_HOPS"):
        env.pop(name, None)
    server = start_api_server(env, base / "gunicorn.out")
    yield server
    stop_process(server.process)


def test_the_issues_requests_against_a_real_keyless_server(keyless_server):
    """Each request the issue confirmed against `make run`, over real HTTP to gunicorn."""
    url = keyless_server.base_url
    port = url.rsplit(":", 1)[1]
    # POST /batches with no Content-Type and a foreign Origin (was 202).
    batch = requests.post(f"{url}/batches", data=LINE.encode(), headers={"Origin": FOREIGN}, timeout=10)
    assert batch.status_code == 403 and batch.json()["error"]["type"] == "forbidden"
    # Multipart /v1/files from a foreign origin (was 200).
    files = {"file": ("b.jsonl", LINE.encode())}
    upload = requests.post(f"{url}/v1/files", data={"purpose": "batch"}, files=files, headers={"Origin": FOREIGN})
    assert upload.status_code == 403
    # DNS rebinding: the browser connects to 127.0.0.1 but names the attacker's host (was 200).
    for path in ("/jobs", "/metrics", "/readyz"):
        rebound = requests.get(f"{url}{path}", headers={"Host": f"rebind.example:{port}"}, timeout=10)
        assert rebound.status_code == 403 and rebound.json()["error"]["type"] == "forbidden", path
    # The console's own requests (same origin, declared types) and curl's (no Origin) still work.
    own = {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"}
    jsonl = {**own, "Content-Type": "application/jsonl"}
    assert requests.post(f"{url}/batches", data=LINE.encode(), headers=jsonl, timeout=10).status_code == 202
    assert requests.get(f"{url}/metrics/history", headers=own, timeout=10).status_code == 200
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
