"""`/admin/jobs`: the job dashboard of docs/architecture.md §9, over the durable `jobs` table.

Counts and the job list refresh themselves (htmx polling of `?fragment=`) without touching
the filters; retry and revoke swap the row in place and the row keeps polling until final.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Response, redirect, render_template, request, url_for

from app.admin.common import actor, admin_bp, ask_confirmation, confirmed, job_rows, query_args, run_action
from app.audit.service import AuditFilter, emails_of, recent
from app.auth.guards import permission_required
from app.core.templating import UrlPattern, is_htmx_request, url_pattern
from app.core.toasts import toast
from app.errors import DomainError
from app.i18n import _, ngettext, translate_stored
from app.jobs import management as job_management
from app.jobs.management import STATUS_LABELS, JobFilter, format_duration, job_state
from app.jobs.models import Job
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


def _labels() -> dict[str, str]:
    """The job table's words, translated once per table (not once per row). Those with
    placeholders are whole sentences each row fills in (`| format(…)`)."""
    return {
        "job": _("Job"),
        "task": _("Task"),
        "queue": _("Queue"),
        "status": _("Status"),
        "attempt": _("Attempt %(attempts)s"),
        "progress": _("Progress"),
        "user": _("User"),
        "system": _("system"),
        "created": _("Created"),
        "duration": _("Duration"),
        "actions": _("Actions"),
        "actions_for": _("Actions for job %(id)s"),
        "open": _("Open"),
        "retry": _("Retry"),
        "revoke": _("Revoke"),
        "revoke_question": _("Revoke this job? It will not run."),
    }


def _row_urls() -> dict[str, UrlPattern]:
    """What a job row links to, built once for a whole table (templates/admin/jobs/_row.html)."""
    return {
        "detail": url_pattern("admin.job_detail", "job_id"),
        "retry": url_pattern("admin.retry_job", "job_id"),
        "revoke": url_pattern("admin.revoke_job", "job_id"),
    }


def _row_context(job: Job, error: str | None = None) -> dict:
    return {
        "job": job,
        "state": job_state(job),
        "emails": _emails([job]),
        "urls": _row_urls(),
        "L": _labels(),
        "row_error": error,
    }


@admin_bp.get("/jobs")
@permission_required("jobs:read")
def jobs() -> str:
    filters = _filters()
    fragment = request.args.get("fragment")
    page = job_management.list_jobs(filters, request.args.get("page", 1, type=int), PAGE_SIZE)
    context = {
        "page": page,
        "rows": job_rows(page.items),
        "filters": filters,
        "emails": _emails(list(page.items)),
        "status_labels": STATUS_LABELS,
        "urls": _row_urls(),
        "L": _labels(),
        "poll_url": url_for("admin.jobs", **query_args(fragment="rows")),
        "page_args": query_args(),
    }
    if fragment == "rows":
        return render_template("admin/jobs/_table.html", **context)
    context |= {"queue_names": list(QUEUES)}
    if is_htmx_request():
        return render_template("admin/jobs/_list.html", **context)
    return render_template(
        "admin/jobs/index.html",
        queues=job_management.overview(),
        # Schedules and descriptions are marked with N_ where the tasks are declared (tasks.maintenance).
        periodic=[
            (
                replace(task, schedule=translate_stored(task.schedule), description=translate_stored(task.description)),
                run,
            )
            for task, run in job_management.periodic_tasks()
        ],
        format_duration=format_duration,
        **context,
    )


@admin_bp.get("/jobs/<job_id>")
@permission_required("jobs:read")
def job_detail(job_id: str) -> str:
    job = job_management.get_job(job_id)
    if request.args.get("fragment") == "status":
        return render_template("admin/jobs/_status.html", job=job, state=job_state(job))
    events = recent(AuditFilter(target=f"job:{job.id}"), limit=20)
    return render_template(
        "admin/jobs/detail.html",
        job=job,
        state=job_state(job),
        user=job_management.caused_by(job),
        events=events,
        emails=emails_of({e.actor_user_id for e in events}),
        spec=QUEUES.get(job.queue),
    )


def _job_action(job_id: str, change, message: str) -> Response | str:
    """htmx: swap the job's row in place (a refusal shown in it), the outcome as a toast;
    otherwise a toast on the page it goes back to."""
    job = job_management.get_job(job_id)
    if is_htmx_request():
        try:
            change(job)
        except DomainError as error:  # the service's unit of work rolled the change back
            return render_template("admin/jobs/_row.html", **_row_context(job_management.get_job(job_id), error.detail))
        toast(message % {"id": job.id[:8]}, "success")
        return render_template("admin/jobs/_row.html", **_row_context(job_management.get_job(job_id)))

    def apply() -> str:
        change(job)
        return message % {"id": job.id[:8]}

    return run_action(apply, url_for("admin.job_detail", job_id=job_id))


@admin_bp.post("/jobs/<job_id>/retry")
@permission_required("jobs:manage")
def retry_job(job_id: str) -> Response | str:
    return _job_action(job_id, lambda job: job_management.retry(actor(), job), _("Job %(id)s is queued again."))


@admin_bp.post("/jobs/<job_id>/revoke")
@permission_required("jobs:manage")
def revoke_job(job_id: str) -> Response | str:
    if not confirmed() and not is_htmx_request():
        return ask_confirmation(_("Revoke this job? It will not run."), _("Revoke"))
    return _job_action(
        job_id, lambda job: job_management.revoke(actor(), job), _("Job %(id)s is revoked; it will not run.")
    )


@admin_bp.post("/jobs/retry-failed")
@permission_required("jobs:manage")
def retry_failed() -> Response | str:
    filters = JobFilter(
        queue=request.form.get("queue") or None,
        q=(request.form.get("q") or "").strip() or None,
        user_id=request.form.get("user", type=int),
    )
    if not confirmed():
        question = (
            _("Retry every failed job in the %(queue)s queue matching the filters?", queue=filters.queue)
            if filters.queue
            else _("Retry every failed job matching the filters?")
        )
        return ask_confirmation(question, _("Retry all"), danger=False)

    def retried() -> str:
        count = job_management.retry_all_failed(actor(), filters)
        if filters.queue:
            return ngettext(
                "%(num)d failed job in the %(queue)s queue queued again.",
                "%(num)d failed jobs in the %(queue)s queue queued again.",
                count,
                queue=filters.queue,
            )
        return ngettext("%(num)d failed job queued again.", "%(num)d failed jobs queued again.", count)

    return run_action(
        retried,
        url_for("admin.jobs", status="failed", queue=filters.queue),
    )


@admin_bp.post("/jobs/purge")
@permission_required("jobs:manage")
def purge_jobs() -> Response | str:
    days = request.form.get("days", type=int)
    queue = request.form.get("queue") or None
    if days is None:
        toast(_("Give the number of days as a whole number."), "error")
        return redirect(url_for("admin.jobs"))
    if not confirmed():
        return ask_confirmation(
            ngettext(
                "Delete succeeded jobs older than %(num)d day?", "Delete succeeded jobs older than %(num)d days?", days
            ),
            _("Purge"),
        )

    def purged() -> str:
        count = job_management.purge_succeeded(actor(), days, queue)
        return ngettext("Purged %(num)d succeeded job.", "Purged %(num)d succeeded jobs.", count)

    return run_action(purged, url_for("admin.jobs"))


@admin_bp.post("/jobs/periodic/<name>/run")
@permission_required("jobs:manage")
def run_periodic(name: str) -> Response:
    return run_action(
        lambda: _(
            "%(name)s is queued to run now (job %(job)s).",
            name=name,
            job=job_management.run_periodic_now(actor(), name).id[:8],
        ),
        url_for("admin.jobs"),
    )
