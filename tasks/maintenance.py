"""Periodic housekeeping on the `sync` queue. Each scheduled run is a durable job (retried by
the queue's policy, listed in /admin/jobs) except the sweeper's; each run is recorded for the
admin's jobs page, and an admin can start one at once (app.jobs.periodic)."""

from __future__ import annotations

from collections.abc import Callable

from app.auth import impersonation
from app.auth.lockout import prune_failures
from app.i18n import N_
from app.jobs import service as jobs_service
from app.jobs.periodic import PeriodicTask, run_recorded
from app.uploads.service import cleanup_pending
from tasks.runtime import durable_task


def periodic(
    schedule: str, description: str, *, durable: bool = True, **cron: str
) -> Callable[[Callable[[], object]], PeriodicTask]:
    """Declare the function a periodic task run on `cron` (huey's crontab), listed with
    `schedule` and `description` in the admin (both marked with N_: the admin's jobs page
    translates them); each app's queues register it on their `sync` huey. It returns what it
    did (a dict of counts): a run that did nothing is logged at DEBUG only.

    Each scheduled run is a durable job named after the function ("tasks.stats.rollup_yesterday")
    on `sync`, with that queue's retries, so the function must be idempotent. `durable=False`
    is for the job sweeper alone: it runs straight from the scheduler, never as a job."""

    def decorator(func: Callable[[], object]) -> PeriodicTask:
        return PeriodicTask(func.__name__, schedule, description, func, tuple(sorted(cron.items())), durable)

    return decorator


@periodic(
    N_("every minute"),
    N_("Re-send jobs huey lost (worker killed, broker hiccup); fail those out of attempts."),
    durable=False,
    minute="*",
)
def sweep_jobs() -> dict[str, int]:
    """Re-send jobs huey lost (worker killed, broker hiccup); fail those out of attempts.

    Not a durable job, on purpose: it is what re-sends lost jobs, so a sweep job huey lost
    would wait for a sweep. It runs straight from every `sync` scheduler each minute, and is
    safe to run twice at once (each re-send is a compare-and-set); the next minute's run is
    its retry."""
    report = jobs_service.sweep()
    return {"requeued": len(report.requeued), "failed": len(report.failed)}


@periodic(N_("every 10 minutes"), N_("Remove uploads left pending for over an hour, and their objects."), minute="*/10")
def cleanup_pending_uploads() -> dict[str, int]:
    """Remove uploads left pending for over an hour, and their objects."""
    return {"removed": cleanup_pending()}


@periodic(
    N_("every 10 minutes"),
    N_("Record the end of impersonations whose time ran out with nobody there to stop them."),
    minute="*/10",
)
def close_lapsed_impersonations() -> dict[str, int]:
    """Record the end of impersonations whose time ran out with nobody there to stop them."""
    return {"closed": impersonation.close_lapsed()}


@durable_task("sync", summarize=lambda payload: {"periodic_task": payload["name"]})
def run_periodic_now(*, job_id: str, name: str) -> None:
    """An admin's "run now" of the sweeper (other periodic tasks' runs are jobs of their own
    names), and of any task in jobs queued before periodic runs became jobs."""
    run_recorded(name)


@periodic(N_("hourly"), N_("Forget per-client wrong-password counts nobody added to for a day."), minute="7")
def prune_login_failures() -> dict[str, int]:
    """Forget per-client wrong-password counts nobody added to for a day."""
    return {"forgotten": prune_failures()}


@periodic(
    N_("daily at 03:41 UTC"),
    N_("Delete succeeded jobs older than JOBS_RETENTION_DAYS (failed ones stay, for the dead letter)."),
    hour="3",
    minute="41",
)
def prune_job_history() -> dict[str, int]:
    """Delete succeeded jobs older than JOBS_RETENTION_DAYS (failed ones stay, for the dead letter)."""
    return {"pruned": jobs_service.prune_succeeded()}
