"""`GET /metrics` for Prometheus and `GET /metrics/history` for the console; both read Redis, so every API process
answers the same."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import require_admin
from api.metrics_exposition import metrics_registry
from api.openapi import document
from api.queries import MetricsHistoryQuery
from api.routes.common import services
from api.schemas import MetricsHistoryView

bp = Blueprint("metrics", __name__)


def _require_admin() -> None:
    """Worker names, hosts and loads, and every key's traffic together, are for admins only."""
    require_admin(request, services().settings)


@bp.get("/metrics")
@document(tags=("metrics",), answers={200: None}, errors=(401, 403))
def metrics():
    """The service's metrics in the Prometheus text format (the same from every API process)."""
    _require_admin()
    body = generate_latest(metrics_registry(services()))
    return Response(body, content_type=CONTENT_TYPE_LATEST)


@bp.get("/metrics/history")
@document(tags=("metrics",), answers={200: MetricsHistoryView}, errors=(401, 403, 422), query=MetricsHistoryQuery)
def metrics_history():
    """Samples of queue depth, jobs in flight, tokens/s and each GPU worker's memory over the last hour."""
    _require_admin()
    since = MetricsHistoryQuery.read().since
    history = services().metrics_history
    view = MetricsHistoryView(
        interval_seconds=history.interval_s, window_seconds=history.window_s, samples=history.samples(since)
    )
    return jsonify(view)
