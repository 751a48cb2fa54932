"""Flask-Caching's Redis backend, made to degrade instead of fail.

Flask-Caching's RedisCache raises when Redis is down, which would turn a cache outage into
500s. `ResilientRedisCache` answers every operation as a miss (get → None, set → False)
when Redis errors, logs one warning per `WARN_EVERY` seconds, and then stops calling Redis
for `RETRY_AFTER` seconds (a circuit breaker, app.core.circuit), so while Redis is down a request pays
at most one client timeout per process per window instead of one per cache call. The first
call after the window tries Redis again: caching resumes by itself when Redis is back.
This covers `cache.get/set`, `@cache.memoize`, `{% cache %}` fragments and our cache-aside
helpers alike, since they all go through this backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_caching.backends.rediscache import RedisCache
from flask_caching.backends.simplecache import SimpleCache
from redis.exceptions import RedisError

from app.core.circuit import Circuit
from app.logging import get_logger

log = get_logger("hearth.cache")

WARN_EVERY = 30.0
RETRY_AFTER = 2.0


def cache_circuit() -> Circuit:
    """The breaker of one backend (app.core.circuit): its window, its warning and recovery lines."""
    return Circuit(
        "cache",
        retry_after=RETRY_AFTER,
        warn_every=WARN_EVERY,
        log=log,
        unavailable_event="cache_unavailable",
        recovered_event="cache_recovered",
        detail="answering from the database until Redis is back",
    )


def _guarded(name: str, fallback: Any) -> Callable[..., Any]:
    parent = getattr(RedisCache, name)

    def method(self: ResilientRedisCache, *args: Any, **kwargs: Any) -> Any:
        if not self.circuit.allows():
            return fallback(*args) if callable(fallback) else fallback
        try:
            result = parent(self, *args, **kwargs)
        except RedisError as error:
            self.circuit.record_failure(name, error)
            return fallback(*args) if callable(fallback) else fallback
        self.circuit.record_success()
        return result

    method.__name__ = name
    method.__doc__ = f"RedisCache.{name}, answering {fallback!r} while Redis is unavailable."
    return method


class ResilientRedisCache(RedisCache):
    """RedisCache whose every operation degrades to a miss while Redis is unavailable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.circuit = cache_circuit()

    get = _guarded("get", None)
    get_many = _guarded("get_many", lambda *keys: [None] * len(keys))
    get_dict = _guarded("get_dict", lambda *keys: dict.fromkeys(keys))
    has = _guarded("has", False)
    set = _guarded("set", False)
    add = _guarded("add", None)  # None, not False: "nobody holds it" is unknown, so don't wait
    set_many = _guarded("set_many", lambda *args: [])
    delete = _guarded("delete", False)
    delete_many = _guarded("delete_many", lambda *keys: [])
    inc = _guarded("inc", None)
    dec = _guarded("dec", None)
    clear = _guarded("clear", False)
    unlink = _guarded("unlink", lambda *keys: [])


class EmbeddedSimpleCache(SimpleCache):
    """The embedded profile's L2: an in-process store of this app's own. Other apps and
    processes on the same database learn of its invalidations through the generation row
    (app.cache.generation), as they do of each other's."""

    @classmethod
    def factory(cls, app: Any, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]) -> EmbeddedSimpleCache:
        kwargs.update(threshold=max(config.get("CACHE_THRESHOLD") or 0, 5000))
        return cls(*args, **kwargs)
