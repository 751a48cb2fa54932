"""Rate limiting (seed §5, step 6): one per-IP budget for the whole app, plus route limits.

- The app-wide budget (RATE_LIMIT_DEFAULT, per client IP, fixed window) is checked on every
  request except probes and static files with `limits`, the library under Flask-Limiter,
  against the same storage: Redis when REDIS_URL is set, memory otherwise. That is one
  storage call per request. Flask-Limiter's own per-request machinery (which works out which
  of many possible limits apply) cost about 250 µs a request on top of the Redis call, so
  its middleware hook is not installed.
- Route-specific limits use Flask-Limiter: mark a view with `@rate_limited("5 per minute")`;
  `install_route_limits` wraps it with the app's Flask-Limiter decorator, which checks the
  limit when that view runs.

Both key on `client_address()`: behind `TRUSTED_PROXIES` proxies that is the real client's
address as ProxyFix resolved it from X-Forwarded-For, so each client behind the proxy has its
own budget and an extra X-Forwarded-For entry sent by a client changes nothing (app.core.net;
in staging and production a warning is logged once if requests arrive without the header).

If Redis fails, the budget is kept in memory for a few seconds before Redis is tried again,
so a hung Redis costs one short timeout, not one per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from app.config import Settings
from app.core.net import client_address, watch_forwarded_for
from app.logging import get_logger

log = get_logger("hearth.ratelimit")

ROUTE_LIMITS_ATTR = "__hearth_rate_limits__"
INSTALLED_ATTR = "__hearth_rate_limits_installed__"
STORAGE_RETRY_SECONDS = 5.0
EXEMPT_ENDPOINT_PREFIXES = ("health.",)


def limit_headers(limit: int, remaining: int, reset_in: int) -> list[tuple[str, str]]:
    return [
        ("Retry-After", str(reset_in)),
        ("RateLimit-Limit", str(limit)),
        ("RateLimit-Remaining", str(remaining)),
        ("RateLimit-Reset", str(reset_in)),
    ]


class RateLimited(TooManyRequests):
    """A 429 that knows the limit it hit, for the Retry-After and RateLimit-* headers."""

    def __init__(self, limit: int, remaining: int, reset_in: int):
        super().__init__("Too many requests.")
        self.limit, self.remaining, self.reset_in = limit, remaining, reset_in

    def rate_limit_headers(self) -> list[tuple[str, str]]:
        return [
            ("Retry-After", str(self.reset_in)),
            ("RateLimit-Limit", str(self.limit)),
            ("RateLimit-Remaining", str(self.remaining)),
            ("RateLimit-Reset", str(self.reset_in)),
        ]


class GlobalRateLimit:
    """The app-wide per-IP budget, checked in `before_request`."""

    def __init__(self, settings: Settings):
        self.items: list[RateLimitItem] = parse_many(settings.rate_limit_default)
        self.namespace = f"{settings.redis_prefix}:rl:app"
        if settings.redis_url:
            storage = storage_from_string(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
            )
        else:
            storage = MemoryStorage()
        self.primary = FixedWindowRateLimiter(storage)
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        self.primary_down_until = 0.0

    def _strategy(self) -> FixedWindowRateLimiter:
        return self.fallback if time.monotonic() < self.primary_down_until else self.primary

    def check(self) -> None:
        endpoint = request.endpoint or ""
        if endpoint == "static" or endpoint.startswith(EXEMPT_ENDPOINT_PREFIXES):
            return
        key = client_address()
        for item in self.items:
            strategy = self._strategy()
            try:
                allowed = strategy.hit(item, self.namespace, key)
            except Exception as exc:  # storage down or hung: keep serving, counted in memory
                self.primary_down_until = time.monotonic() + STORAGE_RETRY_SECONDS
                log.warning("rate_limit_storage_unavailable", error=repr(exc))
                strategy = self.fallback
                allowed = strategy.hit(item, self.namespace, key)
            if not allowed:
                reset_at, remaining = strategy.get_window_stats(item, self.namespace, key)
                raise RateLimited(item.amount, remaining, max(1, int(reset_at - time.time())))


def rate_limited(*limits: str, key_func: Callable[[], str] | None = None, methods: list[str] | None = None):
    """Give a view its own limits (in addition to the app-wide budget), e.g. on login."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        marks = getattr(view, ROUTE_LIMITS_ATTR, [])
        setattr(
            view,
            ROUTE_LIMITS_ATTR,
            [*marks, *({"limit": limit, "key_func": key_func, "methods": methods} for limit in limits)],
        )
        return view

    return decorator


def install_route_limits(app: Flask, limiter: Limiter) -> None:
    """Wrap every view marked with `rate_limited` in the app's Flask-Limiter decorator."""
    for endpoint, view in list(app.view_functions.items()):
        marks = getattr(view, ROUTE_LIMITS_ATTR, [])
        if not marks or getattr(view, INSTALLED_ATTR, None) is limiter:
            continue
        for mark in marks:
            view = limiter.limit(mark["limit"], key_func=mark["key_func"], methods=mark["methods"])(view)
        setattr(view, INSTALLED_ATTR, limiter)
        app.view_functions[endpoint] = view


def init_rate_limiting(app: Flask, settings: Settings) -> Limiter:
    """Pipeline step 6: the app-wide budget hook, and Flask-Limiter for route limits."""
    # Per-IP limits are only per client if the proxy count is right: say so when it is not.
    watch_forwarded_for(app, settings)
    budget = GlobalRateLimit(settings)
    app.extensions["hearth.rate_limit"] = budget
    app.before_request(budget.check)
    limiter = Limiter(key_func=client_address)
    limiter.init_app(app)
    # Route limits are checked by their decorators; the middleware hook would only re-derive,
    # on every request, that no other limit applies.
    app.before_request_funcs[None] = [
        hook for hook in app.before_request_funcs[None] if getattr(hook, "__self__", None) is not limiter
    ]
    return limiter


def breached_limit_headers(error: Exception) -> list[tuple[str, str]]:
    """Retry-After and RateLimit-* headers (IETF draft: seconds until reset) for a 429."""
    if isinstance(error, RateLimited):
        return error.rate_limit_headers()
    from app.extensions import app_limiter

    breached = app_limiter().current_limit
    if breached is None:
        return []
    try:
        reset_in = max(1, int(breached.reset_at - time.time()))
        remaining = breached.remaining
    except Exception as exc:  # storage gone between the hit and here: still answer the 429
        log.warning("rate_limit_window_unavailable", error=repr(exc))
        return []
    return [
        ("Retry-After", str(reset_in)),
        ("RateLimit-Limit", str(breached.limit.amount)),
        ("RateLimit-Remaining", str(remaining)),
        ("RateLimit-Reset", str(reset_in)),
    ]
