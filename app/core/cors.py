"""CORS for the JSON API (pipeline step 2): browsers on the configured origins may call /api/*.

Only /api/ answers cross-origin requests, and only for origins in CORS_ORIGINS (`*` allows
any). A preflight (`OPTIONS` with Access-Control-Request-Method) is answered by Flask's
automatic OPTIONS response plus the headers below; the requested headers are echoed back
when they are ones the API reads. Every header value is computed once per app.
"""

from __future__ import annotations

from flask import Request, Response

from app.config import Settings
from app.core.api_paths import is_api_request

EXPOSED_HEADERS = (
    "ETag",
    "Link",
    "Location",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
    "X-Total-Count",
)
ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-Request-ID", "If-Match", "If-None-Match")
ALLOWED_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
PREFLIGHT_MAX_AGE = "600"


class ApiCors:
    """The API's cross-origin rules, precomputed from CORS_ORIGINS."""

    def __init__(self, settings: Settings):
        self.any_origin = "*" in settings.cors_origins
        self.origins = frozenset(settings.cors_origins)
        self.enabled = bool(self.origins)
        self.exposed = ", ".join(EXPOSED_HEADERS)
        self.allowed_headers = frozenset(name.lower() for name in ALLOWED_HEADERS)

    def apply(self, request: Request, response: Response) -> None:
        origin = request.environ.get("HTTP_ORIGIN")
        if not origin or not is_api_request():
            return
        if not (self.any_origin or origin in self.origins):
            return
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = "*" if self.any_origin else origin
        headers["Access-Control-Expose-Headers"] = self.exposed
        if not self.any_origin:
            _add_vary(response, "Origin")
        if request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.environ:
            headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
            requested = request.environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
            allowed = [name.strip() for name in requested.split(",") if name.strip().lower() in self.allowed_headers]
            if allowed:
                headers["Access-Control-Allow-Headers"] = ", ".join(allowed)


def _add_vary(response: Response, name: str) -> None:
    """Add `name` to Vary as plain string work (`response.vary` parses and rebuilds the set)."""
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = name
    elif name.lower() not in vary.lower():
        response.headers["Vary"] = f"{vary}, {name}"
