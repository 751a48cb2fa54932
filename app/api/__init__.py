"""The JSON API: `/api/v1/...` operations, `/api/openapi.json` and `/api/docs`."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, render_template, request

from app.api.openapi import build_spec
from app.api.v1 import v1_bp
from app.core.http_cache import publicly_cacheable, strong_etag
from app.version import __version__

api_bp = Blueprint("api", __name__, url_prefix="/api")
api_bp.register_blueprint(v1_bp)

SPEC_CACHE_KEY = "hearth.openapi"
# The sections of the API reference: signing in first, then the signed-in account, then the
# rest alphabetically (app.api.openapi.ordered_tags).
FIRST_TAGS = ("auth", "me")
TAG_DESCRIPTIONS = {
    "auth": "Bearer tokens: sign in for an access and a refresh token, refresh them, sign out.",
    "me": "The signed-in account: its profile, roles and permissions.",
    "api-keys": "Personal API keys for scripts and servers: created with a fresh sign-in, shown once, scoped to "
    "permissions you hold (and `self:read`/`self:write` for your own data), revoked at once.",
    "admin": "The admin area's operations: users, roles, jobs and queues (admin permissions).",
    "exports": "Documents built in the background (the `reports` queue): your data, user lists, audit trail, "
    "activity reports; poll until ready, then download.",
    "meta": "The service itself.",
    "notifications": "Your notification centre: notices about exports, files and your account, marking them read, "
    "and which kinds reach you in Hearth and by email.",
    "roles": "The roles accounts can hold.",
    "uploads": "Files: presigned uploads straight to storage, confirmation, processing and downloads.",
    "users": "Accounts, for those allowed to manage them.",
    "webhooks": "Outbound webhooks (webhooks:manage): endpoints, signing secrets shown once, the event catalogue, "
    "test events, the delivery log and redelivery.",
}


@api_bp.get("/openapi.json")
@publicly_cacheable(max_age=300)
def openapi_document() -> Response:
    """The generated OpenAPI document, built once per process from the registered schemas."""
    cached = current_app.extensions.get(SPEC_CACHE_KEY)
    if cached is None:
        spec = build_spec(
            current_app,
            title="Hearth API",
            version=__version__,
            first_tags=FIRST_TAGS,
            tag_descriptions=TAG_DESCRIPTIONS,
        )
        document = orjson.dumps(spec)
        cached = current_app.extensions[SPEC_CACHE_KEY] = (document, strong_etag(document))
    document, etag = cached
    response = Response(document, mimetype="application/json")
    response.set_etag(etag)
    return response.make_conditional(request)


@api_bp.get("/docs")
@publicly_cacheable(max_age=60)
def api_docs() -> str:
    """Interactive API documentation: Swagger UI (vendored under static/), in a shadow root of
    its own (static/js/api-docs.js), themed light and dark by static/css/api-docs.css."""
    return render_template("api/docs.html")
