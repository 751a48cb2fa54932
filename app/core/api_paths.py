"""Which requests belong to the JSON API: the one rule every layer that treats them
differently (session cookie, CSRF-free bearer auth, problem+json errors, CORS, cache headers)
asks, so the API's prefix is written down once."""

from __future__ import annotations

from flask import request

API_PREFIX = "/api/"


def is_api_path(path: str) -> bool:
    """True for a path under the JSON API (`/api/...`)."""
    return path.startswith(API_PREFIX)


def is_api_request() -> bool:
    """True while handling a request to the JSON API (needs a request context)."""
    return request.path.startswith(API_PREFIX)
