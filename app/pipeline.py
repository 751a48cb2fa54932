"""The global request pipeline (docs/architecture.md §4–5): what every request goes through, in two hooks.
The numbers are the steps of docs/architecture.md §5.

Before the view (`RequestPipeline.before`, registered first, so it runs before every other
extension's hook): 1. request id and log context, 2. trusted host (app.core.hosts), 3. body
limit, 4. app-wide rate limit (app.core.ratelimit), 5. hostile input (app.core.input),
6. CSRF for browser routes (Flask-WTF), 7. the browser hooks (the session record check);
then the routes' own checks.

After the view (`RequestPipeline.after`, registered first, so Flask runs it last): the browser
hooks (the remember-me cookies), then 9. Cache-Control default
(app.core.http_cache), 10. security headers (app.core.security_headers), 11. CORS on /api/*
(app.core.cors), 12. compression (app.core.compression), 13. the request id header, the
request log line and metrics, with the final status.

One hook each instead of one per extension, and every constant (header values, the CSP
string, the CORS lists) computed once per app: `bench/README.md` lists what each step costs
per request. The request log line is encoded once, with orjson, straight to the log sink.

Hooks that only browser routes need (cookie sessions, remember-me) register with
`add_browser_hooks` instead of `app.before_request` / `after_request`: the pipeline calls them
for every path outside /api/, in registration order before the view and in reverse after it,
as Flask would, and an API request never pays for them (each hook Flask calls costs a few µs
of dispatch even when it returns at once). The request id lives on `g`; app.logging adds it
to every line logged during the request.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from flask import Flask, Request, Response, current_app, g, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from app.core.api_paths import is_api_path
from app.core.compression import Compression
from app.core.cors import ApiCors
from app.core.hosts import EXEMPT_PREFIX as HOST_EXEMPT_PREFIX
from app.core.hosts import HostMatcher
from app.core.http_cache import apply_default_cache_control
from app.core.input import refuse_hostile_input
from app.core.security_headers import SecurityHeaders
from app.extensions import csrf
from app.i18n import _
from app.logging import IMPERSONATOR_KEY, SINK, hash_identifier, redacted_path
from app.metrics import RequestMetrics

if TYPE_CHECKING:
    from flask.ctx import _AppCtxGlobals

    from app.config import Settings
    from app.core.ratelimit import GlobalRateLimit

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
# Probes and static files are polled constantly; logging each would drown the signal.
QUIET_PREFIXES = ("/health/", "/static/", "/metrics")
EXTENSION_KEY = "hearth.pipeline"


def new_request_id() -> str:
    """A random UUID4 in its canonical form (os.urandom + formatting: a third of uuid4()'s cost)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def incoming_request_id() -> str:
    """Accept a well-formed X-Request-ID from the caller (or proxy), else mint a UUID4."""
    candidate = request.environ.get("HTTP_X_REQUEST_ID")
    return candidate if candidate and _SANE_REQUEST_ID.match(candidate) else new_request_id()


def _hashed_user_id(request_vars: _AppCtxGlobals, secret_key: str) -> str | None:
    """The acting user's hashed id, without forcing a session or token load just to log it."""
    user = request_vars.get("_login_user") or request_vars.get("api_user")
    user_id = getattr(user, "id", None) if user is not None and getattr(user, "is_authenticated", False) else None
    if user_id is None:
        user_id = request_vars.get("api_user_id")
    return hash_identifier(user_id, secret_key) if user_id is not None else None


class RequestPipeline:
    """Per app: the precomputed pieces of the pipeline and its two hooks."""

    def __init__(self, app: Flask, settings: Settings, rate_limit: GlobalRateLimit, content_security_policy: dict):
        self.hosts = HostMatcher(settings.allowed_hosts)
        self.rate_limit = rate_limit
        self.security_headers = SecurityHeaders(settings, content_security_policy)
        self.cors = ApiCors(settings)
        self.compression = Compression(app.config["COMPRESS_MIN_SIZE"])
        self.metrics: RequestMetrics = app.extensions["hearth.metrics"]
        self.max_content_length = app.config["MAX_CONTENT_LENGTH"]
        # Flask-WTF's default, unless configured (csrf.init_app runs later and only fills gaps).
        self.csrf_methods = frozenset(app.config.get("WTF_CSRF_METHODS", ("POST", "PUT", "PATCH", "DELETE")))
        self.secret_key = settings.secret_key
        self.root_logger = logging.getLogger()
        self._stamp: tuple[int, str] = (0, "")
        self.browser_before: list[Callable[[], None]] = []
        self.browser_after: list[Callable[[Response], Response]] = []

    # Before the view -------------------------------------------------------------------------

    def before(self) -> None:
        req = request._get_current_object()  # one proxy lookup instead of one per attribute
        request_vars = g._get_current_object()
        environ = req.environ
        request_vars.request_started = time.perf_counter()
        candidate = environ.get("HTTP_X_REQUEST_ID")
        request_id = candidate if candidate and _SANE_REQUEST_ID.match(candidate) else new_request_id()
        request_vars.request_id = request_id  # app.logging adds it to the request's log lines
        # After ProxyFix, HTTP_HOST carries X-Forwarded-Host when TRUSTED_PROXIES is set.
        path = req.path
        if not self.hosts.allows(environ.get("HTTP_HOST", "")) and not path.startswith(HOST_EXEMPT_PREFIX):
            raise BadRequest(description=_("This host name is not served here."))
        self._enforce_body_limit(req, current_app.view_functions.get(req.endpoint or ""))
        self.rate_limit.check(req)
        refuse_hostile_input()
        if is_api_path(path):
            return
        if req.method in self.csrf_methods:
            # The JSON API authenticates with bearer tokens, which browsers never attach on
            # their own; cookie-authenticated browser routes need the CSRF token.
            csrf.protect(apply_exemptions=True)
        for hook in self.browser_before:
            hook()

    def _enforce_body_limit(self, req: Request, view: object) -> None:
        """Refuse a declared oversize body before anything reads it (Werkzeug still caps
        bodies without Content-Length as they are read)."""
        limit = self.max_content_length
        own_limit = getattr(view, "max_body_bytes", None)
        if own_limit is not None:
            # e.g. the local storage upload endpoint, which enforces its signed policy's size itself
            limit = own_limit
            req.max_content_length = limit
        if limit is not None and req.environ.get("CONTENT_LENGTH") and (req.content_length or 0) > limit:
            raise RequestEntityTooLarge()

    # After the view --------------------------------------------------------------------------

    def after(self, response: Response) -> Response:
        req = request._get_current_object()
        if not is_api_path(req.path):
            for hook in self.browser_after:
                response = hook(response)
        view = current_app.view_functions.get(req.endpoint or "")
        # The header names already set, in one pass: Werkzeug's `in` and `get` raise and catch
        # a KeyError for every absent header, which is most of them here.
        present = {name.lower() for name, _value in response.headers}
        apply_default_cache_control(req, response, view, present)
        self.security_headers.apply(req, response, view)
        if self.cors.enabled:
            self.cors.apply(req, response)
        self.compression.apply(req, response, present)
        self._finish(req, response)
        return response

    def _finish(self, req: Request, response: Response) -> None:
        request_vars = g._get_current_object()
        request_id = request_vars.get("request_id") or incoming_request_id()
        response.headers._list.append((REQUEST_ID_HEADER, request_id))  # checked by _SANE_REQUEST_ID
        started = request_vars.get("request_started")
        seconds = time.perf_counter() - started if started else None
        route = req.url_rule.rule if req.url_rule is not None else "unmatched"
        status = response.status_code
        if seconds is not None:
            self.metrics.observe_request(req.method, route, status, seconds)
        if status < 400 and req.path.startswith(QUIET_PREFIXES):
            return
        level = logging.WARNING if status >= 500 else logging.INFO
        if not self.root_logger.isEnabledFor(level):
            return
        # Encoded here in one call rather than through structlog's processor chain: its fields
        # are fixed and hold nothing secret (the route and the redacted path, never the raw
        # path, which can carry a live reset, verification or download token).
        line = {
            "method": req.method,
            "route": route,
            "path": redacted_path(),
            "status": status,
            "duration_ms": round(seconds * 1000, 2) if seconds is not None else None,
            "request_id": request_id,
            "user": _hashed_user_id(request_vars, self.secret_key),
            "remote_addr": req.remote_addr,
            "event": "request",
            "level": "warning" if status >= 500 else "info",
            "timestamp": self._timestamp(),
        }
        impersonator = request_vars.get(IMPERSONATOR_KEY)  # "view as" (app.auth.impersonation)
        if impersonator is not None:
            line["impersonator"] = impersonator
        SINK.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
        SINK.flush()

    def _timestamp(self) -> str:
        """ISO 8601 UTC with microseconds, as structlog's TimeStamper writes it; the part up to
        the second is formatted once per second."""
        now = time.time()
        second = int(now)
        cached = self._stamp
        if cached[0] != second:
            cached = self._stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{cached[1]}.{int((now - second) * 1_000_000):06d}Z"


def init_pipeline(app: Flask, settings: Settings, rate_limit: GlobalRateLimit, content_security_policy: dict) -> None:
    """Register the pipeline's two hooks; call before any other extension registers its own."""
    pipeline = RequestPipeline(app, settings, rate_limit, content_security_policy)
    app.extensions[EXTENSION_KEY] = pipeline
    app.extensions["hearth.hosts"] = pipeline.hosts
    app.before_request(pipeline.before)
    app.after_request(pipeline.after)


def add_browser_hooks(
    app: Flask, before: Callable[[], None] | None = None, after: Callable[[Response], Response] | None = None
) -> None:
    """Hooks for browser routes only (every path outside /api/), run by the pipeline: `before`
    after CSRF and before the routes' own checks, `after` before the Cache-Control default
    (which then sees any cookie it sets). Later `after` hooks run first, as in Flask."""
    pipeline: RequestPipeline = app.extensions[EXTENSION_KEY]
    if before is not None:
        pipeline.browser_before.append(before)
    if after is not None:
        pipeline.browser_after.insert(0, after)
