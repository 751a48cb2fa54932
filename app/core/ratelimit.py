"""Rate limiting (docs/architecture.md §5, step 4): one per-IP budget for the whole app, plus route limits.

- The app-wide budget (RATE_LIMIT_DEFAULT, per client IP, fixed windows) is checked on every
  request except probes and static files. With Redis, each process counts requests itself and
  sends its counts for every client, and reads everyone's back, in one round trip (one Lua
  script) per RATE_LIMIT_SYNC_MS (`GlobalRateLimit`): a request between two syncs costs a
  dictionary update, where a round trip per request cost ~85 µs of CPU under gunicorn and the
  `limits` library over redis-py's pool 200–400 µs. Without Redis (embedded profile) the
  windows are counted in memory with `limits`. Flask-Limiter's own per-request machinery
  (which works out which of many possible limits apply) is not installed either.
- Route-specific limits use Flask-Limiter: mark a view with `@rate_limited("5 per minute")`;
  `install_route_limits` wraps it with the app's Flask-Limiter decorator, which checks the
  limit when that view runs.
- A request authenticated by a personal API key (`Authorization: Bearer hth_<prefix>_…`) to
  an operation that authenticates (marked `API_KEY_BUDGET_ATTR` by app.api.openapi) counts
  against that key's own budget (API_KEY_RATE_LIMIT, counted the same way) instead of its
  client address's: a server's script has its budget, whoever shares its address. The budget
  is keyed by a digest of the whole presented key (`api_key_bucket`), not by its prefix:
  prefixes are not secret (lists, the admin page, the audit trail), and a made-up key with a
  real key's prefix lands in a budget of its own, so only whoever holds the key can spend its
  budget. A key that then fails authentication is charged to the client address too
  (`charge_failed_credential`, app.auth.guards), so making up keys buys nothing; a request
  anywhere else (no authentication, an unknown path) counts against the address as usual.
  Telling the two apart costs an access-token request one string comparison.

Route limits and the app-wide budget key on `client_address()`: behind `TRUSTED_PROXIES`
proxies that is the real client's address as ProxyFix resolved it from X-Forwarded-For, so
each client behind the proxy has its own budget and an extra X-Forwarded-For entry sent by a
client changes nothing (app.core.net; in staging and production a warning is logged once if
requests arrive without the header).

If Redis fails, the budget is kept in memory for a few seconds before Redis is tried again,
so a hung Redis costs one short timeout, not one per request.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hiredis
from flask import Flask, Request, current_app, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from redis import Redis
from redis.connection import Connection, parse_url
from werkzeug.exceptions import TooManyRequests

from app.config import Settings
from app.core.net import client_address, watch_forwarded_for
from app.extensions import app_limiter
from app.logging import get_logger

log = get_logger("hearth.ratelimit")

ROUTE_LIMITS_ATTR = "__hearth_rate_limits__"
INSTALLED_ATTR = "__hearth_rate_limits_installed__"
STORAGE_RETRY_SECONDS = 5.0
EXEMPT_ENDPOINT_PREFIXES = ("health.",)
# On a view: requests to it presenting a personal API key count against the key's own budget.
API_KEY_BUDGET_ATTR = "__hearth_api_key_budget__"
# `Authorization: Bearer hth_<prefix>_<secret>` (app.apikeys.service) and its prefix's lengths.
API_KEY_MARK = "hth_"
API_KEY_PREFIX_LENGTHS = range(8, 13)
API_KEY_BUCKET_PERSON = b"hearth-rl-apikey"  # BLAKE2b personalisation (≤ 16 bytes) of a key's budget


def limit_headers(limit: int, remaining: int, reset_in: int) -> list[tuple[str, str]]:
    """Retry-After and RateLimit-* headers (IETF draft: seconds until reset) for a 429."""
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
        return limit_headers(self.limit, self.remaining, self.reset_in)


# Add each key's hits; a window's first hits start its expiry (and a key that somehow lost its
# expiry gets it back). Returns each key's count and milliseconds left, in order.
WINDOWS_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local hits = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local count = redis.call('INCRBY', key, hits)
  local left = -1
  if count ~= hits then left = redis.call('PTTL', key) end
  if left < 0 then
    redis.call('PEXPIRE', key, window)
    left = window
  end
  out[2 * i - 1] = count
  out[2 * i] = left
end
return out
"""


class RedisWindows:
    """Fixed-window counters in Redis: any number of keys counted in one round trip.

    Each thread keeps one connection, opened on first use (after the fork) by redis-py, which
    handles the handshake (TLS, AUTH, SELECT). The round trip then bypasses redis-py: the
    command is packed by hiredis, written with one `sendall` and its reply read with
    `recv_into` a hiredis reader, on the connection's socket (no pool lock, retry wrapper,
    health-check PING or per-call pid check).
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
            self.local.buffer = bytearray(4096)
        if connection._sock is None:  # new, or disconnected after an error
            connection.connect()
        return connection

    def _round_trip(self, connection: Connection, command: bytes) -> Any:
        sock = connection._sock
        sock.sendall(command)
        reader = hiredis.Reader()
        buffer = self.local.buffer
        reply = False
        while reply is False:
            received = sock.recv_into(buffer)
            if not received:
                raise ConnectionError("Redis closed the connection")
            reader.feed(buffer, 0, received)
            reply = reader.gets()
        return reply

    def add(self, hits: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
        """Add `hits` (key, hits, window ms) to their windows: each key's count and ms left."""
        keys = [key for key, _, _ in hits]
        arguments = [value for _, count, window in hits for value in (count, window)]
        connection = self._connection()
        try:
            reply = self._round_trip(
                connection, hiredis.pack_command(("EVALSHA", self.script_sha, len(keys), *keys, *arguments))
            )
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
                # A restarted or flushed Redis: load the script again.
                reply = self._round_trip(
                    connection, hiredis.pack_command(("EVAL", WINDOWS_SCRIPT, len(keys), *keys, *arguments))
                )
            if isinstance(reply, hiredis.ReplyError):
                raise reply
        except Exception:
            connection.disconnect()
            raise
        return list(zip(reply[0::2], reply[1::2], strict=True))

    def reset(self, namespace: str) -> None:
        client = Redis(**self.connection_kwargs, ssl=self.connection_class is not Connection)
        for key in client.scan_iter(match=f"{namespace}:*"):
            client.delete(key)


@dataclass
class _Windows:
    """One client's windows as this process knows them: the counts Redis last returned and
    when each window ends (monotonic seconds)."""

    counts: list[int]
    ends: list[float]


class GlobalRateLimit:
    """The app-wide per-IP budget, checked by the pipeline before every view.

    With Redis, each process counts its own requests and sends them, for every client at once,
    in one round trip per RATE_LIMIT_SYNC_MS (the request that finds the interval over carries
    it, and is judged on the counts Redis returns). Every other request is judged on the last
    counts Redis returned plus the hits this process has counted since, with no round trip:
    within one process the count is exact; other processes' requests are seen at most one
    interval late, so a client spreading a burst over N processes can get at most what N
    processes admit in one interval beyond its budget. A client over its budget is refused
    by every process, without a round trip, until its window ends. 0 sends each request's
    hit at once: exact across processes, at one round trip per request (~85 µs of CPU under
    gunicorn, bench/README.md).
    """

    def __init__(self, settings: Settings, limits: str | None = None, name: str = "app"):
        self.items: list[RateLimitItem] = parse_many(limits or settings.rate_limit_default)
        self.namespace = f"{settings.redis_prefix}:rl:{name}"
        self.windows_ms = [item.get_expiry() * 1000 for item in self.items]
        self.key_suffixes = [f"{item.amount}/{item.multiples}/{item.GRANULARITY.name}" for item in self.items]
        self.redis = RedisWindows(settings.redis_url, settings.redis_timeout_seconds) if settings.redis_url else None
        self.sync_seconds = settings.rate_limit_sync_ms / 1000
        # Memory counts: the embedded profile's, and the fallback while Redis is unavailable.
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self.redis_down_until = 0.0
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}  # hits counted here, not yet sent
        self._sending: dict[str, int] = {}  # hits on their way to Redis
        self._known: dict[str, _Windows] = {}
        self._next_sync = 0.0
        # Per personal API key (API_KEY_RATE_LIMIT), counted the same way (the app budget's only).
        self.api_keys: GlobalRateLimit | None = None

    def check(self, req: Request | None = None) -> None:
        """Count this request; raise RateLimited past the budget. `req`: the current request,
        when the caller already holds it (saves the proxy lookups)."""
        req = req or request._get_current_object()
        endpoint = req.endpoint or ""
        if endpoint == "static" or endpoint.startswith(EXEMPT_ENDPOINT_PREFIXES):
            return
        # An API key says so where an access token's header starts ("Bearer hth_…" vs "Bearer eyJ…").
        if req.environ.get("HTTP_AUTHORIZATION", "")[7:11] == "hth_" and self.api_keys is not None:
            bucket = api_key_bucket(req.environ["HTTP_AUTHORIZATION"])
            if bucket is not None and getattr(current_app.view_functions.get(endpoint), API_KEY_BUDGET_ATTR, False):
                self.api_keys.hit(bucket)
                return
        self.hit(req.remote_addr or "unknown")  # = client_address(), after ProxyFix

    def hit(self, client: str) -> None:
        """Count one request of `client` (an address, or a key's `api_key_bucket`); raise RateLimited
        past the budget."""
        now = time.monotonic()
        if self.redis is not None and now >= self.redis_down_until:
            with self._lock:
                hits = self._pending[client] = self._pending.get(client, 0) + 1
                batch = None
                if now >= self._next_sync and not self._sending:
                    batch = self._sending = self._pending
                    self._pending = {}
                    self._next_sync = now + self.sync_seconds
                else:
                    hits += self._sending.get(client, 0)
                    known = self._known.get(client)
            if batch is not None:
                self._sync(batch, client, now)
                return
            if known is not None:
                for item, count, end in zip(self.items, known.counts, known.ends, strict=True):
                    if now < end and count + hits > item.amount:
                        raise RateLimited(item.amount, 0, max(1, math.ceil(end - now)))
            else:
                for item in self.items:
                    if hits > item.amount:
                        raise RateLimited(item.amount, 0, item.get_expiry())
            return
        self.check_in_memory(client)

    def _sync(self, batch: dict[str, int], client: str, now: float) -> None:
        """Send `batch` (this request's hit among them), learn every client's counts, and judge
        this request on its client's."""
        hits = [
            (f"{self.namespace}:{suffix}:{address}", count, window)
            for address, count in batch.items()
            for suffix, window in zip(self.key_suffixes, self.windows_ms, strict=True)
        ]
        learned: dict[str, _Windows] = {}
        try:
            replies = self.redis.add(hits)
            size = len(self.items)
            learned = {
                address: _Windows(
                    [count for count, _ in replies[index * size : (index + 1) * size]],
                    [now + left / 1000 for _, left in replies[index * size : (index + 1) * size]],
                )
                for index, address in enumerate(batch)
            }
        except Exception as exc:  # storage down or hung: keep serving, counted in memory
            self.redis_down_until = time.monotonic() + STORAGE_RETRY_SECONDS
            log.warning("rate_limit_storage_unavailable", error=repr(exc))
        finally:
            with self._lock:
                # Windows that have ended are forgotten (the map holds recent clients only).
                self._known = {
                    address: windows for address, windows in self._known.items() if max(windows.ends) > now
                } | learned
                self._sending = {}  # whatever happened, the next interval syncs again
        if not learned:
            self.check_in_memory(client)
            return
        mine = learned[client]
        for item, count, end in zip(self.items, mine.counts, mine.ends, strict=True):
            if count > item.amount:
                raise RateLimited(item.amount, 0, max(1, math.ceil(end - now)))

    def check_in_memory(self, client: str) -> None:
        """The embedded profile's count, and the fallback while Redis is unavailable."""
        for item in self.items:
            if not self.memory.hit(item, self.namespace, client):
                reset_at, remaining = self.memory.get_window_stats(item, self.namespace, client)
                raise RateLimited(item.amount, remaining, max(1, int(reset_at - time.time())))

    def reset(self) -> None:
        """Forget every count (tests)."""
        if self.api_keys is not None:
            self.api_keys.reset()
        self.memory.storage.reset()
        with self._lock:
            self._pending, self._sending, self._known = {}, {}, {}
            self._next_sync = 0.0
        if self.redis is not None:
            self.redis.reset(self.namespace)


def api_key_bucket(authorization: str) -> str | None:
    """The budget of an `Authorization: Bearer hth_<prefix>_…` header (a digest of the whole
    key, as app.auth.guards reads it), else None (only its shape: app.auth.guards authenticates
    the key). Keyed by the whole key, so only the key itself spends its budget: the prefix
    alone is public. A keyed BLAKE2b, not the SHA-256 the database stores, so the rate-limit
    storage holds nothing that matches a stored hash."""
    scheme, _space, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(API_KEY_MARK):
        return None
    prefix, underscore, _secret = token[len(API_KEY_MARK) :].partition("_")
    if not underscore or len(prefix) not in API_KEY_PREFIX_LENGTHS:
        return None
    return hashlib.blake2b(token.encode(), digest_size=16, person=API_KEY_BUCKET_PERSON).hexdigest()


def charge_failed_credential() -> None:
    """A request whose API key failed authentication: counted against its client address's
    budget too (it was counted against the budget of the key exactly as presented, which no
    working key shares), so guessing keys is limited per client like everything else.
    RateLimited past that budget."""
    budget: GlobalRateLimit = current_app.extensions["hearth.rate_limit"]
    budget.hit(client_address())


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
    budget.api_keys = GlobalRateLimit(settings, settings.api_key_rate_limit, "key")
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

    breached = app_limiter().current_limit
    if breached is None:
        return []
    try:
        reset_in = max(1, int(breached.reset_at - time.time()))
        remaining = breached.remaining
    except Exception as exc:  # storage gone between the hit and here: still answer the 429
        log.warning("rate_limit_window_unavailable", error=repr(exc))
        return []
    return limit_headers(breached.limit.amount, remaining, reset_in)
