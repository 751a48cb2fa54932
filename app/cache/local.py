"""L1: a bounded in-process TTL map per app instance, and the Redis pub/sub bus that makes
every other instance drop its copy when something cached changes (docs/architecture.md §8:
L1 in-process, 30 s).

Entries are keyed `(namespace, key)`. Dropping is local at once and, when Redis is
configured, published on `<prefix>:l1-invalidate`; each instance runs one daemon thread
subscribed to that channel (started on first use), so a change made on one instance is
gone from every other instance's L1 within milliseconds, not after the 30 s TTL. The
embedded profile has one web process and no Redis: local drops are all it needs.

Publishing goes through a circuit breaker (app.core.circuit): after a failed publish the
next PUBLISH_RETRY_AFTER seconds of drops are local only (the others fall back on the TTL)
and one `l1_invalidation_not_published` warning stands for PUBLISH_WARN_EVERY seconds of them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cachetools import TTLCache
from redis import Redis
from redis.exceptions import RedisError

from app.core.circuit import Circuit
from app.logging import get_logger

log = get_logger("hearth.cache")

# The publish breaker: skip publishing for this long after a failure; warn this often at most.
PUBLISH_RETRY_AFTER = 2.0
PUBLISH_WARN_EVERY = 30.0

MISSING = object()
SEPARATOR = "\x1f"
ALL_KEYS = "*"


def _weight(value: Any) -> int:
    """An entry's share of the bound: 1, or what a large value declares as `l1_weight` (its
    KiB, e.g. a cached response document), so big entries cannot fill memory 10,000 at a time."""
    return getattr(value, "l1_weight", 1)


class LocalCache:
    """Thread-safe bounded TTL cache; `drop(namespace)` removes a whole namespace.

    Bounded by weight (`maxsize` units): most entries weigh 1, a cached document its KiB."""

    def __init__(self, ttl: float, maxsize: int = 10_000) -> None:
        self._data: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl, getsizeof=_weight)
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> Any:
        with self._lock:
            return self._data.get((namespace, key), MISSING)

    def set(self, namespace: str, key: str, value: Any) -> None:
        with self._lock:
            try:
                self._data[(namespace, key)] = value
            except ValueError:  # heavier than the whole cache: not kept in-process (L2 still has it)
                self._data.pop((namespace, key), None)

    def drop(self, namespace: str, key: str = ALL_KEYS) -> None:
        with self._lock:
            if key != ALL_KEYS:
                self._data.pop((namespace, key), None)
                return
            for entry in [entry for entry in self._data if entry[0] == namespace]:
                self._data.pop(entry, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class InvalidationBus:
    """Publishes drops to, and applies drops from, every instance on the same Redis."""

    def __init__(self, local: LocalCache, redis_url: str | None, channel: str, timeout: float) -> None:
        self.local = local
        self.channel = channel
        self.redis_url = redis_url
        self.timeout = timeout
        self._publisher: Redis | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.ready = threading.Event()
        self.received = 0
        # A dead or hung Redis costs one client timeout per window, not one per change.
        self.circuit = Circuit(
            "l1-invalidation",
            retry_after=PUBLISH_RETRY_AFTER,
            warn_every=PUBLISH_WARN_EVERY,
            log=log,
            unavailable_event="l1_invalidation_not_published",
            recovered_event="l1_invalidation_published_again",
            detail="other instances keep their L1 copies until the L1 TTL ends",
        )

    def drop(self, namespace: str, key: str = ALL_KEYS) -> None:
        """Drop here at once, and tell the other instances."""
        self.local.drop(namespace, key)
        if self.redis_url is None:
            return
        if not self.circuit.allows():
            return  # Redis failed a moment ago: the others fall back on the L1 TTL
        try:
            if self._publisher is None:
                self._publisher = Redis.from_url(
                    self.redis_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
                )
            self._publisher.publish(self.channel, f"{namespace}{SEPARATOR}{key}")
        except RedisError as error:  # the others fall back on the L1 TTL
            self.circuit.record_failure("publish", error, namespace=namespace)
            return
        self.circuit.record_success()

    def ensure_listening(self) -> None:
        """Start the subscriber thread once (cheap to call on every L1 read)."""
        if self.redis_url is None or self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="hearth-l1-invalidation", daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                client = Redis.from_url(self.redis_url, socket_connect_timeout=self.timeout, health_check_interval=30)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                # Anything cached while we were not subscribed may have missed a drop.
                self.local.clear()
                self.ready.set()
                delay = 0.5
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        namespace, _, key = message["data"].decode().partition(SEPARATOR)
                        self.local.drop(namespace, key or ALL_KEYS)
                        self.received += 1
            except RedisError as error:
                self.ready.clear()
                log.warning("l1_invalidation_listener_reconnecting", error=repr(error)[:200], in_seconds=delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
