"""Probe endpoints: JSON bodies, 503 when not healthy, exempt from rate limits."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from app.health import service

health_bp = Blueprint("health", __name__, url_prefix="/health")

LIVE_BODY = orjson.dumps({"status": "ok"})


def _json(body: dict, status: int = 200) -> Response:
    response = Response(orjson.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@health_bp.get("/live")
def live() -> Response:
    """The process is up and serving."""
    return Response(LIVE_BODY, mimetype="application/json", headers={"Cache-Control": "no-store"})


@health_bp.get("/ready")
def ready() -> Response:
    report = service.readiness()
    return _json(report.body, 200 if report.healthy else 503)


@health_bp.get("/startup")
def startup() -> Response:
    report = service.startup()
    return _json(report.body, 200 if report.healthy else 503)
