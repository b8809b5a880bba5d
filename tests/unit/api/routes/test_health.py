"""The probes: /healthz and /health always, /readyz only with a live worker (details for admins)."""

from __future__ import annotations

from core.workers.info import WorkerInfo


def test_liveness_answers_without_a_key(api):
    for path in ("/healthz", "/health"):
        response = api.client.get(path)
        assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_only_while_a_worker_that_is_not_draining_beats(make_api, own_redis):
    api = make_api(redis_url=own_redis.url, admin_api_keys=[])
    assert api.client.get("/readyz").status_code == 503
    api.app.extensions["llm"].workers.register(WorkerInfo(name="gpu@test"), ttl_s=30)
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ready"}
    api.app.extensions["llm"].workers.mark_draining("gpu@test", ttl_s=30)
    assert api.client.get("/readyz").status_code == 503


def test_readiness_details_go_to_admins_only(make_api, own_redis):
    api = make_api(redis_url=own_redis.url, key="admin-key", admin_api_keys=["admin-key"])
    api.app.extensions["llm"].workers.register(WorkerInfo(name="gpu@test"), ttl_s=30)
    assert "workers" not in api.client.get("/readyz").get_json()
    detailed = api.client.get("/readyz", headers=api.headers).get_json()
    assert detailed["redis"] is True and [w["name"] for w in detailed["workers"]] == ["gpu@test"]


def test_not_ready_when_redis_does_not_answer(make_api):
    api = make_api(redis_url="redis://127.0.0.1:1/0", redis_socket_timeout_seconds=0.2)
    assert api.client.get("/readyz").status_code == 503
