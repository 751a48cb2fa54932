"""The four queues of seed §9 and their retry policies: the one place they are defined."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueSpec:
    name: str
    workers: int
    retries: int
    exponential: bool

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def backoff_seconds(self, attempt: int, base: float, cap: float) -> float:
        """Delay before the attempt after `attempt` (1-based): base·2^(n-1) or a flat base."""
        delay = base * (2 ** (attempt - 1)) if self.exponential else base
        return min(delay, cap)


QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec("emails", workers=10, retries=3, exponential=True),
        QueueSpec("uploads", workers=5, retries=2, exponential=False),
        QueueSpec("sync", workers=3, retries=5, exponential=True),
        QueueSpec("reports", workers=2, retries=1, exponential=False),
    )
}
