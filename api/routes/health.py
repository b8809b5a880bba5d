"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.auth import is_admin
from api.openapi import document
from api.routes.common import services
from api.schemas import Health, Readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@document(tags=("health",), answers={200: Health}, errors=(), public=True)
def healthz():
    """The API process is up."""
    return jsonify(Health(status="ok"))


@bp.get("/health")
@document(tags=("health",), answers={200: Health}, errors=(), public=True)
def health():
    """The API process is up (the path serving engines answer, which load testers probe)."""
    return jsonify(Health(status="ok"))


@bp.get("/readyz")
@document(tags=("health",), answers={200: Readiness, 503: Readiness}, errors=(), public=True)
def readyz():
    """Ready when Redis answers and at least one worker has its model loaded; details only for an admin."""
    svc = services()
    redis_ok = svc.store.ping()
    workers = svc.workers.live() if redis_ok else []
    # A worker handing its jobs back before it exits takes no new work.
    ready = redis_ok and any(not worker.draining for worker in workers)
    status = "ready" if ready else "not_ready"
    if is_admin(request, svc.settings):
        body = Readiness(status=status, redis=redis_ok, workers=workers)
    else:
        body = Readiness(status=status)
    return jsonify(body.answer()), 200 if ready else 503
