"""Periodic housekeeping, run by the `sync` queue's consumer."""

from __future__ import annotations

from huey import crontab

from app.jobs import service as jobs_service
from tasks.queues import bound_app, sync


@sync.periodic_task(crontab(minute="*"))
def sweep_jobs() -> None:
    """Re-send jobs huey lost (worker killed, broker hiccup) every minute."""
    with bound_app().app_context():
        jobs_service.sweep()


@sync.periodic_task(crontab(minute="*/10"))
def cleanup_pending_uploads() -> None:
    """Remove uploads left `pending` for over an hour, and their objects."""
    from app.uploads.service import cleanup_pending

    with bound_app().app_context():
        cleanup_pending()
