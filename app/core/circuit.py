"""A small circuit breaker for calls to a service that may be down or hung (Redis, a broker).

While the service fails, every call would pay a client timeout; a `Circuit` makes the first
failure cost one timeout and then refuses calls for `retry_after` seconds (the caller takes
its fallback at once). When the window ends, one caller probes: it alone is let through
(the others keep their fallback until it answers), so a hung service costs at most one
timeout per window per process, not one per thread. A success closes the circuit and logs
`<recovered_event>` once; failures log `<unavailable_event>` at most once per `warn_every`
seconds, with how many failures the line stands for.

One `Circuit` per guarded client, held by a per-app object (the cache backend, the L1 bus,
an app's queues): never module state, so two apps in one process never share one.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class Circuit:
    """Open for `retry_after` seconds after each failure; one warning per `warn_every` seconds."""

    def __init__(
        self,
        name: str,
        *,
        retry_after: float,
        warn_every: float,
        log: Any,
        unavailable_event: str,
        recovered_event: str,
        detail: str | None = None,
    ) -> None:
        self.name = name
        self.retry_after = retry_after
        self.warn_every = warn_every
        self.log = log
        self.unavailable_event = unavailable_event
        self.recovered_event = recovered_event
        self.detail = detail
        self._lock = threading.Lock()
        self.open_until = 0.0
        self.last_warning: float | None = None
        self.failures = 0  # since the circuit last closed
        self.unreported = 0  # failures since the last warning
        self.skipped = 0  # calls refused while open, since the circuit last closed

    def allows(self) -> bool:
        """May the caller call the service now? False while the circuit is open; the one
        caller after a window ends is the probe (the others still get False until it reports)."""
        if not self.failures:  # closed: the hot path is one attribute read
            return True
        now = time.monotonic()
        if now < self.open_until:
            self.skipped += 1  # a racy count is fine: it is only reported
            return False
        with self._lock:
            if now < self.open_until:
                self.skipped += 1
                return False
            # This caller probes; the window is held open for the others until it reports.
            self.open_until = now + self.retry_after
            return True

    def record_failure(self, operation: str, error: BaseException, **context: Any) -> None:
        """The call failed: (re)open the circuit for `retry_after` seconds, warn if due."""
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            self.unreported += 1
            self.open_until = now + self.retry_after
            warn = self.last_warning is None or now - self.last_warning >= self.warn_every
            if warn:
                self.last_warning = now
                failures, self.unreported = self.unreported, 0
        if warn:
            fields: dict[str, Any] = {
                "operation": operation,
                "error": f"{type(error).__name__}: {error}"[:300],
                "retry_after_seconds": self.retry_after,
                **context,
            }
            if failures > 1:
                fields["failures"] = failures
            if self.detail:
                fields["detail"] = self.detail
            self.log.warning(self.unavailable_event, **fields)

    def record_success(self) -> None:
        """The call worked: close the circuit (and say so once, if it was open)."""
        if self.failures:
            with self._lock:
                if self.failures:
                    self.log.info(self.recovered_event, failures=self.failures, skipped=self.skipped)
                    self.failures = self.skipped = self.unreported = 0
                    self.open_until = 0.0


class Throttle:
    """Lets a repeated warning through at most once per `every` seconds (thread-safe), for an
    outage noticed by every request (app.errors: `database_unavailable`)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: float | None = None
        self._count = 0

    def due(self) -> int:
        """Count one occurrence; how many the warning stands for when one is due now, else 0."""
        now = time.monotonic()
        with self._lock:
            self._count += 1
            if self._last is not None and now - self._last < self.every:
                return 0
            self._last = now
            count, self._count = self._count, 0
            return count
