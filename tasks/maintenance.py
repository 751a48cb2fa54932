"""Periodic housekeeping, run by the `sync` queue's consumers; each run is recorded for the
admin's jobs page, and `run_periodic_now` lets an admin start one at once."""

from __future__ import annotations

from collections.abc import Callable

from app.auth.lockout import prune_failures
from app.i18n import N_
from app.jobs import service as jobs_service
from app.jobs.periodic import PeriodicTask, run_recorded
from app.uploads.service import cleanup_pending
from tasks.runtime import durable_task


def periodic(schedule: str, description: str, **cron: str) -> Callable[[Callable[[], object]], PeriodicTask]:
    """Declare the function a periodic task run on `cron` (huey's crontab), listed with
    `schedule` and `description` in the admin (both marked with N_: the admin's jobs page
    translates them); each app's queues register it on their `sync` huey. It returns what it
    did (a dict of counts): a run that did nothing is logged at DEBUG only."""

    def decorator(func: Callable[[], object]) -> PeriodicTask:
        return PeriodicTask(func.__name__, schedule, description, func, tuple(sorted(cron.items())))

    return decorator


@periodic(
    N_("every minute"),
    N_("Re-send jobs huey lost (worker killed, broker hiccup); fail those out of attempts."),
    minute="*",
)
def sweep_jobs() -> dict[str, int]:
    """Re-send jobs huey lost (worker killed, broker hiccup); fail those out of attempts."""
    report = jobs_service.sweep()
    return {"requeued": len(report.requeued), "failed": len(report.failed)}


@periodic(N_("every 10 minutes"), N_("Remove uploads left pending for over an hour, and their objects."), minute="*/10")
def cleanup_pending_uploads() -> dict[str, int]:
    """Remove uploads left pending for over an hour, and their objects."""
    return {"removed": cleanup_pending()}


@durable_task("sync", summarize=lambda payload: {"periodic_task": payload["name"]})
def run_periodic_now(*, job_id: str, name: str) -> None:
    """An admin's "run now" of a periodic task."""
    run_recorded(name)


@periodic(N_("hourly"), N_("Forget per-client wrong-password counts nobody added to for a day."), minute="7")
def prune_login_failures() -> dict[str, int]:
    """Forget per-client wrong-password counts nobody added to for a day."""
    return {"forgotten": prune_failures()}
