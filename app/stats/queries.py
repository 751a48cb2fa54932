"""The reads behind the daily statistics: what happened on one UTC day, per metric and
dimension. Nothing here writes (app.stats.repository does, for `daily_stats`).

Where the activity report (app.exports.renderers.queries) already aggregates the same thing
over a range of days, its helper is called with a one-day range, so the report and the
dashboard count alike: sign-ups, sign-ins by outcome, uploads and bytes by kind and status.
Jobs differ on purpose: the report counts jobs *enqueued* in its range by their current
status, while a day's job outcomes here are the jobs that *finished* that day (a job enqueued
before midnight and still running at the rollup has no outcome yet)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from sqlalchemy import Select, func, select

from app.audit.models import AuditEvent
from app.exports.models import Export
from app.exports.renderers.queries import (
    SIGNED_IN_EVENTS,
    day_bounds,
    sign_ins_by_outcome,
    signups_per_day,
    uploads_by_kind_and_status,
)
from app.extensions import db
from app.jobs.models import FINAL_STATUSES, Job
from app.webhooks.models import WebhookDelivery

# The sign-in audit events (SIGN_IN_EVENTS, from app/auth) and the outcome each stands for in
# `sign_ins` (a test pins that every such event has one).
SIGN_IN_OUTCOMES: dict[str, str] = {
    "login_succeeded": "succeeded",
    "signed_in_remembered": "remembered",
    "login_failed": "failed",
    "login_refused_locked": "locked",
    "login_refused_disabled": "disabled",
}


def _session():
    return db.session


def _on(created_at, day: date):
    """`created_at` falls on the UTC day `day`."""
    start, end = day_bounds(day, day)
    return (created_at >= start) & (created_at < end)


def signups(day: date) -> int:
    return signups_per_day(day, day).get(day.isoformat(), 0)


def active_users(day: date) -> int:
    """Accounts that signed in that day (a password, an emailed link or a remembered device)."""
    statement = select(func.count(func.distinct(AuditEvent.subject_user_id))).where(
        AuditEvent.event.in_(SIGNED_IN_EVENTS), _on(AuditEvent.created_at, day)
    )
    return _session().scalar(statement) or 0


def sign_ins(day: date) -> dict[str, int]:
    """Sign-in attempts by outcome (succeeded, remembered, failed, locked, disabled)."""
    return {SIGN_IN_OUTCOMES[event]: count for event, count in sign_ins_by_outcome(day, day).items()}


def uploads(day: date) -> tuple[dict[str, int], dict[str, int]]:
    """Uploads started that day and their bytes, both by "kind:status" (the status they have now)."""
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for kind, status, count, size in uploads_by_kind_and_status(day, day):
        counts[f"{kind}:{status}"] = count
        sizes[f"{kind}:{status}"] = int(size)
    return counts, sizes


def finished_jobs(day: date) -> Select:
    """(queue, status, duration_ms) of every job that reached a final status that day."""
    return select(Job.queue, Job.status, Job.duration_ms).where(
        Job.status.in_(FINAL_STATUSES), _on(Job.finished_at, day)
    )


def jobs(day: date) -> tuple[dict[str, int], dict[str, list[float]]]:
    """Jobs finished that day by "queue:outcome", and the durations of those that ran, by queue.

    The durations come back as values (a few thousand a day), for percentiles computed alike
    on SQLite, which has no percentile_cont, and PostgreSQL."""
    counts: dict[str, int] = defaultdict(int)
    durations: dict[str, list[float]] = defaultdict(list)
    for queue, status, duration_ms in _session().execute(finished_jobs(day).execution_options(yield_per=2000)):
        counts[f"{queue}:{status}"] += 1
        if duration_ms is not None:
            durations[queue].append(float(duration_ms))
    return dict(counts), dict(durations)


def exports(day: date) -> dict[str, int]:
    """Exports asked for that day, by kind."""
    rows = _session().execute(
        select(Export.kind, func.count()).where(_on(Export.created_at, day)).group_by(Export.kind)
    )
    return {kind: count for kind, count in rows}


def webhook_deliveries_by_status(day: date) -> dict[str, int]:
    """Webhook deliveries created that day, by the status they have now."""
    rows = _session().execute(
        select(WebhookDelivery.status, func.count())
        .where(_on(WebhookDelivery.created_at, day))
        .group_by(WebhookDelivery.status)
    )
    return {value: count for value, count in rows}


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """The `fraction` percentile by linear interpolation between the closest ranks: what
    PostgreSQL's percentile_cont answers. None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
