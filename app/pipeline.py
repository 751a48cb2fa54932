"""The global request pipeline (seed §4–5), registered in this order by `create_app`:

1. security headers (Flask-Talisman)      5. body limit (MAX_CONTENT_LENGTH, in the step-3 hook)
2. CORS on /api/* (Flask-CORS)           6. rate limiting (app.core.ratelimit)
3. request id (this module)              7. request logging + metrics (this module)
4. compression (Flask-Compress)          8. CSRF for browser routes, then route-specific
                                            auth and validation (blueprints)
                                         9. default Cache-Control on the response
                                            (app.core.http_cache)

Flask runs `before_request` hooks in registration order and `after_request` hooks in reverse,
so the request id exists before anything logs, and the log line is written with the final
status.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.logging import get_logger, hash_identifier, redacted_path, request_route

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
# Probes and static files are polled constantly; logging each would drown the signal.
QUIET_PREFIXES = ("/health/", "/static/", "/metrics")

access_log = get_logger("hearth.request")


def incoming_request_id() -> str:
    """Accept a well-formed X-Request-ID from the caller (or proxy), else mint a UUID4."""
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    return candidate if _SANE_REQUEST_ID.match(candidate) else str(uuid.uuid4())


def _start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = incoming_request_id()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)
    # Step 5 runs in the same hook: nothing between steps 3 and 5 acts before the view.
    _enforce_body_limit()


def _enforce_body_limit() -> None:
    """Refuse a declared oversize body before anything reads it (Werkzeug still caps
    bodies without Content-Length as they are read)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and hasattr(view, "max_body_bytes"):
        # e.g. the local storage upload endpoint, which enforces its signed policy's size itself
        limit = view.max_body_bytes
        request.max_content_length = limit
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def _hashed_user_id() -> str | None:
    """The acting user's hashed id, without forcing a session or token load just to log it."""
    user = g.get("_login_user") or g.get("api_user")
    user_id = getattr(user, "id", None) if user is not None and getattr(user, "is_authenticated", False) else None
    if user_id is None:
        user_id = g.get("api_user_id")
    return hash_identifier(user_id, current_app.config["SECRET_KEY"]) if user_id is not None else None


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or incoming_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    endpoint = request_route()
    metrics = current_app.extensions.get("hearth.metrics")
    if metrics is not None and duration_ms is not None:
        metrics.observe_request(request.method, endpoint, response.status_code, duration_ms / 1000)
    quiet = request.path.startswith(QUIET_PREFIXES) and response.status_code < 400
    if not quiet:
        log_method = access_log.warning if response.status_code >= 500 else access_log.info
        # Never the raw path: it can carry a live reset, verification or download token.
        log_method(
            "request",
            method=request.method,
            route=endpoint,
            path=redacted_path(),
            status=response.status_code,
            duration_ms=duration_ms,
            request_id=request_id,
            user=_hashed_user_id(),
            remote_addr=request.remote_addr,
        )
    return response


def _clear_context(_: BaseException | None) -> None:
    structlog.contextvars.clear_contextvars()


def register_request_id(app: Flask) -> None:
    app.before_request(_start_request)


def register_request_logging(app: Flask) -> None:
    # after_request hooks run in reverse registration order, so this one runs before the
    # limiter's, compression's and Talisman's; the status it logs is already final.
    app.after_request(_finish_request)
    app.teardown_request(_clear_context)


def _csrf_for_browser_routes() -> None:
    """CSRF protection for cookie-authenticated browser routes. The JSON API under /api/
    authenticates with bearer tokens, which browsers never attach on their own."""
    if request.method in current_app.config["WTF_CSRF_METHODS"] and not request.path.startswith("/api/"):
        from app.extensions import csrf

        csrf.protect(apply_exemptions=True)


def register_browser_csrf(app: Flask) -> None:
    app.before_request(_csrf_for_browser_routes)


def register_cache_control(app: Flask) -> None:
    """`private, no-store` unless the view chose otherwise or is deliberately public. Registered
    before Flask-Login, so it runs after the remember-me hook and sees its Set-Cookie."""
    from app.core.http_cache import default_cache_control

    app.after_request(default_cache_control)
