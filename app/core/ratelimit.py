"""Rate limiting (seed §5, step 6): one per-IP budget for the whole app, plus route limits.

- The app-wide budget (RATE_LIMIT_DEFAULT, per client IP, fixed windows) is checked on every
  request except probes and static files. With Redis, every window of the budget is counted
  by one Lua script in ONE round trip, sent on a connection each thread keeps for itself
  (`RedisWindows`): about 40 µs of CPU, where the `limits` library over redis-py's pool cost
  200–400 µs a request. Without Redis (embedded profile) the windows are counted in memory
  with `limits`. Flask-Limiter's own per-request machinery (which works out which of many
  possible limits apply) is not installed either.
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

import functools
import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import hiredis
from flask import Flask, Request, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from redis import Redis
from redis.connection import Connection, parse_url
from redis.exceptions import NoScriptError
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


# INCR every window's key; the first hit of a window starts its expiry. Returns the counts.
WINDOWS_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  counts[i] = count
end
return counts
"""


class RedisWindows:
    """Fixed-window counters in Redis: all of a request's windows in one round trip.

    Each thread keeps one connection (opened on first use, after the fork, and reopened by
    redis-py after an error); no pool lock, no retry wrapper, no per-call pid check: the
    limiter is the only Redis call every request makes, so it is kept to the bare protocol.
    """

    def __init__(self, redis_url: str, timeout: float):
        options = parse_url(redis_url)
        # rediss:// URLs name SSLConnection
        self.connection_class: type[Connection] = options.pop("connection_class", Connection)
        self.connection_kwargs = {**options, "socket_timeout": timeout, "socket_connect_timeout": timeout}
        # Redis names scripts by SHA-1 (EVALSHA): an identifier, not a security measure.
        self.script_sha = hashlib.sha1(WINDOWS_SCRIPT.encode(), usedforsecurity=False).hexdigest()
        self.local = threading.local()

    def _connection(self) -> Connection:
        connection = getattr(self.local, "connection", None)
        pid = os.getpid()
        if connection is None or self.local.pid != pid:  # first use in this thread, or forked
            connection = self.local.connection = self.connection_class(**self.connection_kwargs)
            self.local.pid = pid
        return connection

    def hit(self, keys: list[str], expiries: list[int]) -> list[int]:
        connection = self._connection()
        try:
            # Packed by hiredis directly; no health-check PING (the reply is the check).
            command = hiredis.pack_command(("EVALSHA", self.script_sha, len(keys), *keys, *expiries))
            connection.send_packed_command([command], check_health=False)
            try:
                return connection.read_response()
            except NoScriptError:  # a restarted or flushed Redis: load the script again
                connection.send_command("EVAL", WINDOWS_SCRIPT, len(keys), *keys, *expiries)
                return connection.read_response()
        except Exception:
            connection.disconnect()
            raise

    def seconds_left(self, key: str) -> int:
        connection = self._connection()
        connection.send_command("TTL", key)
        return int(connection.read_response())

    def reset(self, namespace: str) -> None:
        client = Redis(**self.connection_kwargs, ssl=self.connection_class is not Connection)
        for key in client.scan_iter(match=f"{namespace}:*"):
            client.delete(key)


class GlobalRateLimit:
    """The app-wide per-IP budget, checked by the pipeline before every view."""

    def __init__(self, settings: Settings):
        self.items: list[RateLimitItem] = parse_many(settings.rate_limit_default)
        self.namespace = f"{settings.redis_prefix}:rl:app"
        self.expiries = [item.get_expiry() for item in self.items]
        self.key_suffixes = [f"{item.amount}/{item.multiples}/{item.GRANULARITY.name}" for item in self.items]
        self.redis = RedisWindows(settings.redis_url, settings.redis_timeout_seconds) if settings.redis_url else None
        # Memory counts: the embedded profile's, and the fallback while Redis is unavailable.
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self.redis_down_until = 0.0

    def check(self, req: Request | None = None) -> None:
        """Count this request; raise RateLimited past the budget. `req`: the current request,
        when the caller already holds it (saves the proxy lookups)."""
        req = req or request._get_current_object()
        endpoint = req.endpoint or ""
        if endpoint == "static" or endpoint.startswith(EXEMPT_ENDPOINT_PREFIXES):
            return
        client = req.remote_addr or "unknown"  # = client_address(), after ProxyFix
        if self.redis is not None and time.monotonic() >= self.redis_down_until:
            keys = [f"{self.namespace}:{suffix}:{client}" for suffix in self.key_suffixes]
            try:
                counts = self.redis.hit(keys, self.expiries)
            except Exception as exc:  # storage down or hung: keep serving, counted in memory
                self.redis_down_until = time.monotonic() + STORAGE_RETRY_SECONDS
                log.warning("rate_limit_storage_unavailable", error=repr(exc))
            else:
                for item, key, count in zip(self.items, keys, counts, strict=True):
                    if count > item.amount:
                        raise RateLimited(item.amount, 0, self._seconds_left(key, item))
                return
        for item in self.items:
            if not self.memory.hit(item, self.namespace, client):
                reset_at, remaining = self.memory.get_window_stats(item, self.namespace, client)
                raise RateLimited(item.amount, remaining, max(1, int(reset_at - time.time())))

    def _seconds_left(self, key: str, item: RateLimitItem) -> int:
        try:
            return max(1, self.redis.seconds_left(key))
        except Exception:  # the 429 stands; the client just retries a little later than needed
            return item.get_expiry()

    def reset(self) -> None:
        """Forget every count (tests)."""
        self.memory.storage.reset()
        if self.redis is not None:
            self.redis.reset(self.namespace)


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


def init_rate_limiting(app: Flask, settings: Settings) -> tuple[GlobalRateLimit, Limiter]:
    """Pipeline step 3: the app-wide budget (checked by app.pipeline), and Flask-Limiter for
    route limits, which its decorators check when their view runs."""
    # Per-IP limits are only per client if the proxy count is right: say so when it is not.
    watch_forwarded_for(app, settings)
    budget = GlobalRateLimit(settings)
    app.extensions["hearth.rate_limit"] = budget
    limiter = Limiter(key_func=client_address)
    limiter.init_app(app)
    # Flask-Limiter's hooks would only re-derive, on every request, that no other limit
    # applies (before), inject headers Hearth sends only on 429 (after), and reset a context
    # that dies with the request anyway (teardown). Route limits are its decorators' job.
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        hooks[None] = [hook for hook in hooks.get(None, []) if not _belongs_to(hook, limiter)]
    return budget, limiter


def _belongs_to(hook: Callable[..., Any], limiter: Limiter) -> bool:
    owner = getattr(hook, "__self__", None)
    if owner is None and isinstance(hook, functools.partial):  # Flask-Limiter's after hook
        owner = hook.args[0] if hook.args else None
    return owner is limiter


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
