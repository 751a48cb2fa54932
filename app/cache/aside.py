"""Cache-aside over L1 (in-process) and L2 (Flask-Caching: Redis, or in-process on the
embedded profile), with stampede protection and versioned namespaces (docs/architecture.md §8).

    value = cached(CacheKey("perms", str(user_id)), timeout=300, compute=lambda: ..., local=True)

- **L2 entries** carry the time they stop being fresh. They live in the store for
  `timeout + stale_grace`: after going stale, the first reader takes a short lock
  (`add`, atomic in Redis) and recomputes while everyone else keeps getting the stale value
  (early refresh). On a plain miss, the lock holder computes and the others wait up to
  `MISS_WAIT` for its result before computing themselves (never a hang).
- **Namespaces** are versioned: the L2 key embeds the namespace's version, and
  `bump(namespace)` increments it, so a whole group goes stale with one INCR and no
  KEYS/SCAN. A namespace's version is itself kept in L1, dropped by the bus when bumped.
- **Invalidation after commit**: `invalidate`/`bump` called inside a unit of work run once it
  commits (and not at all on rollback), so a concurrent reader cannot re-cache the old value
  between the invalidation and the commit.
- Every store call goes through `ResilientRedisCache`: with Redis down, reads miss and the
  value comes from the database.
- **Across processes on the embedded profile** (no Redis, so no bus): a commit that
  invalidates anything also bumps the `cache_generation` row in the same transaction, and each
  process looks at that row once per request before its first cache read, emptying its L1 and
  L2 when it moved (app.cache.generation). The production profile skips both steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.cache.generation import GenerationWatch, bump_generation, generation_reader
from app.cache.local import ALL_KEYS, MISSING, InvalidationBus, LocalCache
from app.extensions import cache, db
from app.logging import get_logger

log = get_logger("hearth.cache")

T = TypeVar("T")

EXTENSION_KEY = "hearth.cache"
AFTER_COMMIT_KEY = "hearth.cache.after_commit"
GENERATION_KEY = "hearth.cache.generation"
LOCK_SECONDS = 10
MISS_WAIT = 0.3
MISS_POLL = 0.02


@dataclass(frozen=True)
class CacheKey:
    namespace: str
    key: str


@dataclass
class CacheState:
    """One app's caching: settings, its L1 and its bus, and counters for tests and the bench."""

    enabled: bool
    force_miss: bool
    local: LocalCache
    bus: InvalidationBus
    watch: GenerationWatch | None = None  # embedded profile only (no Redis bus)
    computed: int = 0
    l1_hits: int = 0
    l2_hits: int = 0


def init_caching(app: Flask) -> None:
    settings = app.extensions["hearth.settings"]
    ttl = settings.cache_local_ttl_seconds
    local = LocalCache(ttl)  # per app: without Redis, the generation row keeps apps and processes coherent
    bus = InvalidationBus(
        local,
        settings.redis_url,
        f"{settings.redis_prefix}:l1-invalidate",
        settings.redis_timeout_seconds,
    )
    # Without Redis there is no bus: the generation row tells this process about other processes' changes.
    read = None if settings.redis_url else generation_reader(settings.sqlalchemy_url)
    watch = GenerationWatch(read, lambda: _clear_process_caches(local)) if read else None
    app.extensions[EXTENSION_KEY] = CacheState(settings.cache_enabled, settings.cache_force_miss, local, bus, watch)


def _clear_process_caches(local: LocalCache) -> None:
    """Another process invalidated something: which entries is not known, so drop them all."""
    local.clear()
    cache.clear()


def state() -> CacheState:
    return current_app.extensions[EXTENSION_KEY]


def _local_usable(current: CacheState) -> bool:
    """L1 is used only while this instance is sure to hear about changes (subscribed)."""
    if current.bus.redis_url is None:
        return True
    current.bus.ensure_listening()
    return current.bus.ready.is_set()


def _version(current: CacheState, namespace: str, use_local: bool) -> int:
    if use_local:
        known = current.local.get("__versions__", namespace)
        if known is not MISSING:
            return known
    version = cache.get(f"v:{namespace}") or 0
    if use_local:
        current.local.set("__versions__", namespace, version)
    return version


def store_key(current: CacheState, key: CacheKey, use_local: bool | None = None) -> str:
    if use_local is None:
        use_local = _local_usable(current)
    return f"{key.namespace}:v{_version(current, key.namespace, use_local)}:{key.key}"


def cached(key: CacheKey, compute: Callable[[], T], *, timeout: int, local: bool = False) -> T:
    """The cached value of `key`, computing and storing it on a miss (cache-aside)."""
    current = state()
    if not current.enabled:
        current.computed += 1
        return compute()
    if current.watch is not None:
        current.watch.sync()
    local_usable = _local_usable(current)
    use_local = local and local_usable
    if use_local and not current.force_miss:
        value = current.local.get(key.namespace, key.key)
        if value is not MISSING:
            current.l1_hits += 1
            return value
    full_key = store_key(current, key, local_usable)
    value = _from_l2(current, full_key, compute, timeout)
    if use_local:
        current.local.set(key.namespace, key.key, value)
    return value


def _from_l2(current: CacheState, full_key: str, compute: Callable[[], T], timeout: int) -> T:
    entry = None if current.force_miss else cache.get(full_key)
    now = time.time()
    if entry is not None:
        value, fresh_until = entry
        current.l2_hits += 1
        if now < fresh_until or not cache.add(f"lock:{full_key}", 1, timeout=LOCK_SECONDS):
            return value  # fresh, or stale while another request refreshes it
        return _compute_and_store(current, full_key, compute, timeout, release=True)
    if current.force_miss:
        return _compute_and_store(current, full_key, compute, timeout, release=False)
    locked = cache.add(f"lock:{full_key}", 1, timeout=LOCK_SECONDS)
    if locked is None:  # the store is unavailable: nobody to wait for
        return _compute_and_store(current, full_key, compute, timeout, release=False)
    if locked:
        return _compute_and_store(current, full_key, compute, timeout, release=True)
    deadline = now + MISS_WAIT
    while time.time() < deadline:  # someone else is computing it: wait briefly for their result
        time.sleep(MISS_POLL)
        entry = cache.get(full_key)
        if entry is not None:
            current.l2_hits += 1
            return entry[0]
    return _compute_and_store(current, full_key, compute, timeout, release=False)


def _compute_and_store(current: CacheState, full_key: str, compute: Callable[[], T], timeout: int, release: bool) -> T:
    try:
        value = compute()
        current.computed += 1
        stale_grace = max(5, timeout // 2)
        cache.set(full_key, (value, time.time() + timeout), timeout=timeout + stale_grace)
        return value
    finally:
        if release:
            cache.delete(f"lock:{full_key}")


# Invalidation ------------------------------------------------------------------------------


def invalidate(key: CacheKey) -> None:
    """Forget one entry everywhere (L2, and L1 on every instance), after the current commit."""
    _after_commit(lambda: _invalidate_now(key))


def bump(namespace: str) -> None:
    """Make every entry of `namespace` stale everywhere (one INCR), after the current commit."""
    _after_commit(lambda: _bump_now(namespace))


def _invalidate_now(key: CacheKey) -> None:
    current = state()
    cache.delete(store_key(current, key))
    current.bus.drop(key.namespace, key.key)


def _bump_now(namespace: str) -> None:
    current = state()
    version_key = f"v:{namespace}"
    if cache.cache.inc(version_key) is None:  # Redis down: the drop below still reaches L1
        cache.set(version_key, (cache.get(version_key) or 0) + 1, timeout=0)
    current.bus.drop("__versions__", namespace)
    current.bus.drop(namespace, ALL_KEYS)


def _after_commit(action: Callable[[], None]) -> None:
    session = db.session()
    if session.in_transaction():
        session.info.setdefault(AFTER_COMMIT_KEY, []).append(action)
    else:
        _bump_generation_alone()
        action()


def _bump_generation_alone() -> None:
    """An invalidation outside any transaction: bump the generation in one of its own."""
    watch = state().watch
    if watch is not None:
        with db.engine.begin() as connection:
            produced = bump_generation(connection)
        watch.adopt(produced)


@event.listens_for(Session, "before_commit")
def _bump_generation_with_the_commit(session: Session) -> None:
    """Embedded profile: the generation moves in the same transaction as the change, so no
    process can see the new generation without the new data."""
    if not has_app_context():
        return
    current = current_app.extensions.get(EXTENSION_KEY)
    if current is None or current.watch is None or session.in_nested_transaction():
        return  # production: the Redis bus tells the other instances; savepoints: the outer commit
    session.flush()  # the before_flush listeners of this commit's flush register their invalidations
    if session.info.get(AFTER_COMMIT_KEY) and GENERATION_KEY not in session.info:
        session.info[GENERATION_KEY] = bump_generation(session.connection())


@event.listens_for(Session, "after_commit")
def _run_invalidations(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a released savepoint: nothing is committed until the outer transaction is
    produced = session.info.pop(GENERATION_KEY, None)
    for action in session.info.pop(AFTER_COMMIT_KEY, None) or ():
        try:
            action()
        except Exception:  # the change is committed; a cache hiccup must not turn it into a 500
            log.exception("cache_invalidation_failed")
    if produced is not None:
        state().watch.adopt(produced)


@event.listens_for(Session, "after_rollback")
def _drop_invalidations(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: which pending invalidations were its own is unknown; extra ones are harmless
    session.info.pop(AFTER_COMMIT_KEY, None)
    session.info.pop(GENERATION_KEY, None)
