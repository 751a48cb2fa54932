"""`/admin`: the dashboard. Each panel shows only when the admin may see what it counts."""

from __future__ import annotations

from flask import render_template

from app.admin.common import admin_bp, admin_required, can, job_rows, user_status_labels
from app.jobs import management as job_management
from app.jobs.management import STATUS_LABELS
from app.uploads import service as uploads
from app.users import management as user_management

SIGNUP_WINDOW_DAYS = 7


@admin_bp.get("/")
@admin_required
def index() -> str:
    context: dict = {"status_labels": STATUS_LABELS, "signup_days": SIGNUP_WINDOW_DAYS}
    if can("users:read"):
        context["users"] = user_management.counts_by_status()
        context["signups"] = user_management.signups_since(SIGNUP_WINDOW_DAYS)
        labels = user_status_labels()
        context["user_statuses"] = [(s, labels[s]) for s in user_management.STATUSES if s != "all"]
    if can("uploads:read_any"):
        context["uploads"], context["stored_bytes"] = uploads.totals_by_status()
    if can("jobs:read"):
        context["queues"] = job_management.overview()
        context["failures"] = job_rows(job_management.latest_failures())
    return render_template("admin/dashboard.html", **context)


@admin_bp.get("/queue-counts")
@admin_required
def queue_counts() -> str:
    """The dashboard's live per-queue panel (polled)."""
    if not can("jobs:read"):
        return ""
    return render_template("admin/_queue_counts.html", queues=job_management.overview(), status_labels=STATUS_LABELS)
