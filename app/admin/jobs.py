"""`/admin/jobs`: the job dashboard of docs/architecture.md §9, over the durable `jobs` table.

Counts and the job list refresh themselves (htmx polling of `?fragment=`) without touching
the filters; retry and revoke swap the row in place and the row keeps polling until final.
"""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for

from app.admin.common import actor, admin_bp, ask_confirmation, confirmed, query_args, render_list, run_action
from app.audit.service import AuditFilter, emails_of, recent
from app.auth.guards import permission_required
from app.core.templating import is_htmx_request
from app.errors import DomainError
from app.jobs import management as job_management
from app.jobs.management import STATUS_LABELS, JobFilter
from app.jobs.models import FINAL_STATUSES, Job
from app.jobs.queues import QUEUES

PAGE_SIZE = 25


def _filters() -> JobFilter:
    args = request.args
    return JobFilter(
        queue=args.get("queue") if args.get("queue") in QUEUES else None,
        status=args.get("status") if args.get("status") in STATUS_LABELS else None,
        q=(args.get("q") or "").strip()[:100] or None,
        user_id=args.get("user", type=int),
    )


def _emails(jobs: list[Job]) -> dict[int, str]:
    return emails_of({job.user_id for job in jobs})


def _actions(job: Job) -> dict[str, bool]:
    """Which actions the job's status allows, by the service's own rule (templates list no statuses)."""
    return {
        "final": job.status in FINAL_STATUSES,
        "retryable": job.status in job_management.RETRYABLE,
        "revocable": job.status in job_management.REVOCABLE,
    }


def _row_context(job: Job, error: str | None = None) -> dict:
    return {
        "job": job,
        "emails": _emails([job]),
        "status_labels": STATUS_LABELS,
        "row_error": error,
        **_actions(job),
    }


@admin_bp.get("/jobs")
@permission_required("jobs:read")
def jobs() -> str:
    filters = _filters()
    fragment = request.args.get("fragment")
    page = job_management.list_jobs(filters, request.args.get("page", 1, type=int), PAGE_SIZE)
    context = {
        "page": page,
        "filters": filters,
        "emails": _emails(list(page.items)),
        "status_labels": STATUS_LABELS,
        "queues": job_management.overview(),
        "queue_names": list(QUEUES),
        "final_statuses": FINAL_STATUSES,
        "retryable_statuses": job_management.RETRYABLE,
        "revocable_statuses": job_management.REVOCABLE,
        "periodic": job_management.periodic_tasks(),
        "poll_url": url_for("admin.jobs", **query_args(fragment="rows")),
        "page_args": query_args(),
    }
    if fragment == "rows":
        return render_template("admin/jobs/_table.html", **context)
    return render_list("admin/jobs/index.html", "admin/jobs/_list.html", **context)


@admin_bp.get("/jobs/<job_id>")
@permission_required("jobs:read")
def job_detail(job_id: str) -> str:
    job = job_management.get_job(job_id)
    if request.args.get("fragment") == "status":
        return render_template("admin/jobs/_status.html", job=job, status_labels=STATUS_LABELS, **_actions(job))
    events = recent(AuditFilter(target=f"job:{job.id}"), limit=20)
    return render_template(
        "admin/jobs/detail.html",
        job=job,
        user=job_management.caused_by(job),
        events=events,
        emails=emails_of({e.actor_user_id for e in events}),
        status_labels=STATUS_LABELS,
        spec=QUEUES.get(job.queue),
        **_actions(job),
    )


def _job_action(job_id: str, change, message: str) -> Response | str:
    """htmx: swap the job's row in place (errors shown in it); otherwise flash and go back."""
    job = job_management.get_job(job_id)
    if is_htmx_request():
        try:
            change(job)
        except DomainError as error:  # the service's unit of work rolled the change back
            return render_template("admin/jobs/_row.html", **_row_context(job_management.get_job(job_id), error.detail))
        return render_template("admin/jobs/_row.html", **_row_context(job_management.get_job(job_id)))

    def apply() -> str:
        change(job)
        return message.format(id=job.id[:8])

    return run_action(apply, url_for("admin.job_detail", job_id=job_id))


@admin_bp.post("/jobs/<job_id>/retry")
@permission_required("jobs:manage")
def retry_job(job_id: str) -> Response | str:
    return _job_action(job_id, lambda job: job_management.retry(actor(), job), "Job {id} is queued again.")


@admin_bp.post("/jobs/<job_id>/revoke")
@permission_required("jobs:manage")
def revoke_job(job_id: str) -> Response | str:
    if not confirmed() and not is_htmx_request():
        return ask_confirmation("Revoke this job? It will not run.", "Revoke")
    return _job_action(job_id, lambda job: job_management.revoke(actor(), job), "Job {id} is revoked; it will not run.")


@admin_bp.post("/jobs/retry-failed")
@permission_required("jobs:manage")
def retry_failed() -> Response | str:
    filters = JobFilter(
        queue=request.form.get("queue") or None,
        q=(request.form.get("q") or "").strip() or None,
        user_id=request.form.get("user", type=int),
    )
    where = f" in the {filters.queue} queue" if filters.queue else ""
    if not confirmed():
        return ask_confirmation(f"Retry every failed job{where} matching the filters?", "Retry all", danger=False)
    return run_action(
        lambda: f"{job_management.retry_all_failed(actor(), filters)} failed job(s){where} queued again.",
        url_for("admin.jobs", status="failed", queue=filters.queue),
    )


@admin_bp.post("/jobs/purge")
@permission_required("jobs:manage")
def purge_jobs() -> Response | str:
    days = request.form.get("days", type=int)
    queue = request.form.get("queue") or None
    if days is None:
        flash("Give the number of days as a whole number.", "error")
        return redirect(url_for("admin.jobs"))
    if not confirmed():
        return ask_confirmation(f"Delete succeeded jobs older than {days} day(s)?", "Purge")
    return run_action(
        lambda: f"Purged {job_management.purge_succeeded(actor(), days, queue)} succeeded job(s).",
        url_for("admin.jobs"),
    )


@admin_bp.post("/jobs/periodic/<name>/run")
@permission_required("jobs:manage")
def run_periodic(name: str) -> Response:
    return run_action(
        lambda: f"{name} is queued to run now (job {job_management.run_periodic_now(actor(), name).id[:8]}).",
        url_for("admin.jobs"),
    )
