"""Liveness and readiness probes."""

from __future__ import annotations

import ipaddress

from flask import Blueprint, jsonify, request

from api.auth import owner_of
from api.openapi import document
from api.routes.common import services
from api.schemas import Health, Readiness
from core.errors import Unauthorized

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@document(tags=("health",), answers={200: Health}, errors=(), public=True)
def healthz():
    """The API process is up."""
    return jsonify({"status": "ok"})


@bp.get("/health")
@document(tags=("health",), answers={200: Health}, errors=(), public=True)
def health():
    """The API process is up (the path serving engines answer, which load testers probe)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@document(tags=("health",), answers={200: Readiness, 503: Readiness}, errors=(), public=True)
def readyz():
    """Ready when Redis answers and at least one worker has its model loaded; details only for a trusted caller."""
    store = services().store
    redis_ok = store.ping()
    workers = store.live_workers() if redis_ok else []
    # A worker handing its jobs back before it exits takes no new work.
    ready = redis_ok and any(not worker.get("draining") for worker in workers)
    body: dict = {"status": "ready" if ready else "not_ready"}
    if _may_see_details():
        body |= {"redis": redis_ok, "workers": workers}
    return jsonify(body), 200 if ready else 503


def _may_see_details() -> bool:
    """Worker hosts, pids and the model are for a caller with a valid key, or, with no keys set, a local one."""
    keys = services().settings.api_key_values
    if not keys:
        return is_loopback_address(request.remote_addr)
    try:
        owner_of(request, keys)
    except Unauthorized:
        return False
    return True


def is_loopback_address(address: str | None) -> bool:
    """Whether a caller's address is this machine's own (loopback)."""
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
