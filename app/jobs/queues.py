"""The four queues of docs/architecture.md §9 and their retry policies: the one place they are
defined; and how the jobs domain reaches the app's queues without importing the task modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import current_app


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
        """Nominal delay before the attempt after `attempt` (1-based): base·2^(n-1) or a flat
        base, capped; the most a retry waits (see `jittered_backoff`)."""
        delay = base * (2 ** (attempt - 1)) if self.exponential else base
        return min(delay, cap)

    def jittered_backoff(self, attempt: int, base: float, cap: float, fraction: float) -> float:
        """The delay a retry really waits. Exponential queues use "equal jitter": half the
        nominal delay fixed, the other half scaled by `fraction` (a random number in [0, 1)),
        so the retries of many jobs that failed together (a receiver that was down) spread
        over [delay/2, delay) instead of all arriving at once, and none comes sooner than
        half the nominal delay. Flat queues keep their fixed delay."""
        delay = self.backoff_seconds(attempt, base, cap)
        if not self.exponential:
            return delay
        return delay / 2 + delay / 2 * min(max(fraction, 0.0), 1.0)


QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec("emails", workers=10, retries=3, exponential=True),
        QueueSpec("uploads", workers=5, retries=2, exponential=False),
        QueueSpec("sync", workers=3, retries=5, exponential=True),
        QueueSpec("reports", workers=2, retries=1, exponential=False),
    )
}


# `app.extensions` key of the app's queues (tasks.queues.AppQueues): the jobs service
# dispatches through it, so this domain never imports the task modules.
QUEUES_KEY = "hearth.queues"


@dataclass(frozen=True)
class TaskSpec:
    """What the jobs service needs to know of a task to enqueue it by name."""

    name: str  # "<module>.<function>", e.g. "tasks.emails.send_email"
    queue: str
    summarize: Callable[[dict[str, Any]], dict[str, Any]]  # what the admin's jobs page may show


class AppQueues(Protocol):
    """This app's queues, as the jobs domain sees them (built by tasks.queues.init_app)."""

    tasks: Mapping[str, TaskSpec]
    periodic: Mapping[str, Any]  # name -> app.jobs.periodic.PeriodicTask

    def dispatch(self, job_id: str, task_name: str, delay: float | None) -> bool: ...

    def pending_count(self) -> int: ...


def app_queues() -> AppQueues:
    """The current app's queues."""
    try:
        return current_app.extensions[QUEUES_KEY]
    except KeyError:
        raise RuntimeError("this app's job queues are not built (tasks.queues.init_app)") from None
