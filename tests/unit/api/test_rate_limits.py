"""RATE_LIMIT: each key's requests counted in Redis; past it a 429 with Retry-After, probes and files exempt."""

from __future__ import annotations

import secrets

from api.rate_limits import install_rate_limit


def test_requests_past_the_keys_rate_are_429_while_probes_and_other_keys_answer(make_api):
    first, second = f"a-{secrets.token_hex(6)}", f"b-{secrets.token_hex(6)}"
    api = make_api(rate_limit="2/minute", api_keys=[first, second], key=first)
    other = {"Authorization": f"Bearer {second}"}
    assert [api.client.get("/jobs", headers=api.headers).status_code for _ in range(2)] == [200, 200]
    refused = api.client.get("/jobs", headers=api.headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["error"]["type"] == "too_many_requests"
    assert api.client.get("/jobs", headers=other).status_code == 200
    assert api.client.get("/healthz").status_code == 200 and api.client.get("/console").status_code == 200


def test_no_rate_limit_installs_nothing(make_api):
    api = make_api(rate_limit="")
    assert install_rate_limit(api.app, api.settings) is None
    assert all(api.client.get("/jobs", headers=api.headers).status_code == 200 for _ in range(5))
