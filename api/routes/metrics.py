"""`GET /metrics` for Prometheus and `GET /metrics/history` for the console; both read Redis, so every API process
answers the same."""

from __future__ import annotations

import math
import re

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import require_admin
from api.metrics_exposition import metrics_registry
from api.openapi import document
from api.routes.common import services
from api.schemas import MetricsHistoryQuery, MetricsHistoryView
from core.errors import InvalidInput

bp = Blueprint("metrics", __name__)

# A plain decimal number (what a previous answer's `timestamp` looks like), not `inf`, `nan` or `1_000`.
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


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
    history = services().metrics_history
    return jsonify(
        {
            "interval_seconds": history.interval_s,
            "window_seconds": history.window_s,
            "samples": history.samples(_since()),
        }
    )


def _since() -> float:
    raw = request.args.get("since", "0")
    since = float(raw) if _NUMBER.fullmatch(raw) else math.nan
    if not math.isfinite(since):
        raise InvalidInput("since: must be a Unix time in seconds (a number, 0 or more)", field="since")
    return since
