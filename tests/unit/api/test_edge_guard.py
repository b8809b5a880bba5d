"""The edge guard: Host names the API serves, writes only from its own origin."""

from __future__ import annotations

import pytest

from api.edge_guard import is_same_origin, served_host_names, split_host


@pytest.mark.parametrize(
    ("host", "split"),
    [("localhost:8001", ("localhost", 8001)), ("LLM.lan", ("llm.lan", None)), ("[::1]:80", ("::1", 80)),
     ("bad:port", ("", None))],
)  # fmt: skip
def test_a_host_header_splits_into_a_normalized_name_and_port(host, split):
    assert split_host(host) == split


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [("http://localhost:8001", "localhost:8001", True), ("https://llm.lan", "llm.lan", True),
     ("https://llm.lan", "llm.lan:443", True), ("http://evil.example", "llm.lan", False),
     ("http://llm.lan:8002", "llm.lan:8001", False), ("null", "llm.lan", False)],
)  # fmt: skip
def test_same_origin_compares_name_and_port(origin, host, same):
    assert is_same_origin(origin, host) is same


def test_served_names_without_keys_are_the_allowed_ones_and_api_host(make_settings):
    assert served_host_names(make_settings(allowed_hosts="llm.lan", api_host="10.0.0.7", allow_open_api=True)) == {
        "llm.lan",
        "10.0.0.7",
    }
    assert served_host_names(make_settings(api_keys=["k"])) is None
    assert served_host_names(make_settings(allowed_hosts="*")) is None


def test_the_app_refuses_foreign_hosts_and_cross_site_writes(make_api):
    api = make_api(api_keys=[], allow_open_api=True)
    assert api.client.get("/healthz", headers={"Host": "rebind.example"}).status_code == 403
    cross = api.client.post("/jobs", json={"prompt": "x"}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and api.queue.published == []
    same = api.client.post("/jobs", json={"prompt": "x"}, headers={"Origin": "http://localhost"})
    assert same.status_code == 202
