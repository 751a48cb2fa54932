"""The JSON API: `/api/v1/...` operations, `/api/openapi.json` and `/api/docs`."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, render_template

from app.api.openapi import build_spec
from app.api.v1 import v1_bp

api_bp = Blueprint("api", __name__, url_prefix="/api")
api_bp.register_blueprint(v1_bp)

SPEC_CACHE_KEY = "hearth.openapi"


@api_bp.get("/openapi.json")
def openapi_document() -> Response:
    """The generated OpenAPI document, built once per process from the registered schemas."""
    document = current_app.extensions.get(SPEC_CACHE_KEY)
    if document is None:
        from app import __version__

        spec = build_spec(current_app, title="Hearth API", version=__version__)
        document = current_app.extensions[SPEC_CACHE_KEY] = orjson.dumps(spec)
    return Response(document, mimetype="application/json")


@api_bp.get("/docs")
def api_docs() -> str:
    """Interactive API documentation (Swagger UI, vendored under static/)."""
    return render_template("api/docs.html")
