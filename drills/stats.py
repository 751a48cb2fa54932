"""Pure figures over the load generator's samples: counts by status, percentiles, phases.

Nothing here talks to a server, so tests/drills pins every figure the report prints.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Request kinds (drills.load): what a drill's expectations are about.
PAGE_KINDS = frozenset({"page", "page_signed"})
READ_KINDS = frozenset({"api_read"})
SIGN_IN_KINDS = frozenset({"sign_in", "api_sign_in"})
# The client talking to S3 directly with a presigned form: not a request to Hearth.
EXTERNAL_KINDS = frozenset({"s3_post"})

CONNECTION_ERROR = 0  # a sample's status when no HTTP answer came back (refused, reset, timeout)


@dataclass(slots=True)
class Sample:
    """One request: when it was sent (epoch seconds), what it was, how it ended."""

    at: float
    kind: str
    status: int
    latency: float
    user: int = 0
    retry_after: bool = False
    # The problem type (problem+json) or the client-side error's name, when there is one.
    detail: str | None = None

    @property
    def is_error(self) -> bool:
        """A 5xx or no answer at all: what "errors" counts. 4xx are the client's business."""
        return self.status == CONNECTION_ERROR or self.status >= 500

    @property
    def is_shed(self) -> bool:
        """A sign-in refused with 503 + Retry-After because the process's line of password
        checks was full (PASSWORD_HASH_QUEUE): Hearth shedding argon2 work on purpose, which a
        client retries after Retry-After. Counted among the 5xx, but not a failure."""
        return self.kind in SIGN_IN_KINDS and self.status == 503 and self.retry_after

    @property
    def is_failure(self) -> bool:
        """An error that is not deliberate shedding: what the drills' expectations count."""
        return self.is_error and not self.is_shed


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (any order); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def status_label(status: int) -> str:
    return "conn" if status == CONNECTION_ERROR else str(status)


@dataclass
class Summary:
    """What a set of samples amounts to."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    errors: int = 0
    rate_limited: int = 0
    shed: int = 0

    def errors_by_status(self) -> dict[str, int]:
        """5xx and connection errors, by status, in status order ("conn" first)."""
        return {status_label(s): n for s, n in sorted(self.statuses.items()) if s == CONNECTION_ERROR or s >= 500}

    def other_by_status(self) -> dict[str, int]:
        """4xx answers (429 included), by status."""
        return {str(s): n for s, n in sorted(self.statuses.items()) if 400 <= s < 500}


def summarize(samples: Iterable[Sample]) -> Summary:
    """Counts and latency percentiles of `samples` (latency of answered requests and errors alike)."""
    items = list(samples)
    latencies = [s.latency for s in items]
    statuses = Counter(s.status for s in items)
    return Summary(
        requests=len(items),
        statuses=statuses,
        p50=percentile(latencies, 0.50),
        p95=percentile(latencies, 0.95),
        p99=percentile(latencies, 0.99),
        errors=sum(1 for s in items if s.is_error),
        rate_limited=statuses.get(429, 0),
        shed=sum(1 for s in items if s.is_shed),
    )


@dataclass(frozen=True)
class Phase:
    """A named stretch of a drill, [start, end) in epoch seconds."""

    name: str
    start: float
    end: float

    def holds(self, at: float) -> bool:
        return self.start <= at < self.end


def in_window(samples: Iterable[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at < end]


def hearth_samples(samples: Iterable[Sample]) -> list[Sample]:
    """The samples of requests to Hearth (not the client's own calls to S3)."""
    return [s for s in samples if s.kind not in EXTERNAL_KINDS]


def by_phase(samples: Sequence[Sample], phases: Sequence[Phase]) -> dict[str, Summary]:
    """A summary per phase, in the phases' order; a sample outside every phase is left out."""
    return {phase.name: summarize(s for s in samples if phase.holds(s.at)) for phase in phases}


def by_kind(samples: Iterable[Sample]) -> dict[str, Summary]:
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.kind, []).append(sample)
    return {kind: summarize(group) for kind, group in sorted(groups.items())}


def recovery_after(samples: Iterable[Sample], fault_end: float, kinds: frozenset[str] | None = None) -> float:
    """Seconds from `fault_end` until requests are error-free for good: the end of the last
    failing request (`Sample.is_failure`) sent after `fault_end` (0 when none failed after it)."""
    last = fault_end
    for sample in samples:
        if sample.at >= fault_end and sample.is_failure and (kinds is None or sample.kind in kinds):
            last = max(last, sample.at + sample.latency)
    return last - fault_end


def format_ms(seconds: float | None) -> str:
    """Latency for people: "87 ms", "1,296 ms", "–" for none."""
    if seconds is None:
        return "–"
    return f"{round(seconds * 1000):,} ms"


def format_counts(counts: dict[str, int]) -> str:
    """{"503": 12, "conn": 3} → "12 × 503, 3 × conn"; none → "0"."""
    if not counts:
        return "0"
    return ", ".join(f"{n:,} × {label}" for label, n in counts.items())
