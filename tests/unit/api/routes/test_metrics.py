"""GET /metrics (Prometheus) and /metrics/history, for admins only."""

from __future__ import annotations


def test_metrics_need_an_admin_key(make_api):
    api = make_api(key="plain", api_keys=["plain", "boss"], admin_api_keys=["boss"])
    assert api.client.get("/metrics").status_code == 401
    assert api.client.get("/metrics", headers=api.headers).status_code == 403
    admin = api.client.get("/metrics", headers={"Authorization": "Bearer boss"})
    assert admin.status_code == 200 and admin.mimetype == "text/plain"
    assert b'llm_jobs{status="queued"}' in admin.data


def test_a_queued_job_shows_in_the_job_gauge(make_api, own_redis):
    api = make_api(redis_url=own_redis.url, key="boss", admin_api_keys=["boss"])
    api.client.post("/jobs", json={"prompt": "Hi"}, headers=api.headers)
    text = api.client.get("/metrics", headers=api.headers).get_data(as_text=True)
    assert 'llm_jobs{status="queued"} 1.0' in text


def test_history_answers_its_window_and_refuses_a_bad_since(make_api):
    api = make_api(key="boss", admin_api_keys=["boss"])
    body = api.client.get("/metrics/history", headers=api.headers).get_json()
    assert body["interval_seconds"] == api.settings.metrics_sample_seconds
    assert body["window_seconds"] == api.settings.metrics_history_seconds and isinstance(body["samples"], list)
    for since in ("inf", "nan", "-1", "1_000", "x"):
        assert api.client.get(f"/metrics/history?since={since}", headers=api.headers).status_code == 422, since
