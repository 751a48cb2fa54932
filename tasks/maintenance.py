"""Periodic housekeeping, run by the `sync` queue's consumers; each run is recorded for the
admin's jobs page, and `run_periodic_now` lets an admin start one at once."""

from __future__ import annotations

from collections.abc import Callable

from huey import crontab

from app.jobs import service as jobs_service
from app.jobs.periodic import PeriodicTask, register, run_recorded
from tasks.queues import bound_app, sync
from tasks.runtime import durable_task


def periodic(schedule: str, **cron: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Run the function on `cron` (huey's crontab) and list it, with `schedule`, in the admin."""

    def decorator(func: Callable[[], None]) -> Callable[[], None]:
        register(PeriodicTask(func.__name__, schedule, (func.__doc__ or "").strip(), func))

        def run_on_schedule() -> None:
            with bound_app().app_context():
                run_recorded(func.__name__)

        run_on_schedule.__name__ = func.__name__
        sync.periodic_task(crontab(**cron), name=func.__name__)(run_on_schedule)
        return func

    return decorator


@periodic("every minute", minute="*")
def sweep_jobs() -> None:
    """Re-send jobs huey lost (worker killed, broker hiccup); fail those out of attempts."""
    jobs_service.sweep()


@periodic("every 10 minutes", minute="*/10")
def cleanup_pending_uploads() -> None:
    """Remove uploads left pending for over an hour, and their objects."""
    from app.uploads.service import cleanup_pending

    cleanup_pending()


@durable_task("sync", summarize=lambda payload: {"periodic_task": payload["name"]})
def run_periodic_now(*, job_id: str, name: str) -> None:
    """An admin's "run now" of a periodic task."""
    run_recorded(name)


@periodic("hourly", minute="7")
def prune_login_failures() -> None:
    """Forget per-client wrong-password counts nobody added to for a day."""
    from app.auth.lockout import prune_failures
    from app.extensions import db

    prune_failures()
    db.session.commit()
