"""`users_csv`, `users_xlsx` and `audit_csv`: the admin lists with their page's filters, written
a batch of rows at a time from a server-side cursor (a 100k-user export holds one batch, never
100k rows). Progress is rows written over the count of one query made first.

CSV text cells are defused against formula injection (`csv_safe`); XLSX cells are written as
typed values (`write_string` is never a formula), in XlsxWriter's constant_memory mode, which
flushes each row to disk once the next begins."""

from __future__ import annotations

import csv
from datetime import date
from typing import Any, BinaryIO

import orjson
import xlsxwriter

from app.audit.repository import AuditFilter, audit_statement
from app.audit.service import emails_of
from app.core.pagination import count_rows
from app.exports.renderers import queries
from app.exports.renderers.base import Progress, RenderContext, owners_language, text_output
from app.i18n import N_, _, _l
from app.jobs.service import TaskFailed
from app.users import management

# users_xlsx's header, for people (the CSV keeps EXPORT_COLUMNS's names, as /admin/users always wrote).
USER_HEADINGS = {
    "id": _l("ID"),
    "email": _l("Email"),
    "display_name": _l("Display name"),
    "status": _l("Status"),
    "roles": _l("Roles"),
    "email_verified": _l("Email verified"),
    "created_at": _l("Created (UTC)"),
    "last_login_at": _l("Last sign-in (UTC)"),
}
USER_COLUMN_WIDTHS = (8, 34, 26, 10, 22, 10, 20, 20)
XLSX_MAX_ROWS = 1_048_576  # a worksheet's limit, header included (XlsxWriter ignores writes past it)
TOO_MANY_ROWS = N_("More than %(limit)s users match: too many for one spreadsheet. Narrow the filters or export CSV.")
AUDIT_COLUMNS = (
    "id",
    "created_at",
    "event",
    "actor_id",
    "actor_email",
    "subject_id",
    "subject_email",
    "target",
    "ip",
    "request_id",
    "data",
)


def render_users_csv(context: RenderContext, out: BinaryIO) -> None:
    filters = _user_filters(context.filters)
    progress = Progress(context.progress, management.count_users(filters))
    with text_output(out) as text:
        writer = csv.writer(text)
        writer.writerow(management.EXPORT_COLUMNS)
        for batch in management.export_batches(filters):
            writer.writerows(management.csv_cells(row) for row in batch)
            progress.step(len(batch))
    progress.finish()


def render_users_xlsx(context: RenderContext, out: BinaryIO) -> None:
    filters = _user_filters(context.filters)
    total = management.count_users(filters)
    if total >= XLSX_MAX_ROWS:
        raise TaskFailed(TOO_MANY_ROWS % {"limit": XLSX_MAX_ROWS - 1})
    progress = Progress(context.progress, total)
    # constant_memory: each row goes to a temporary file when the next starts (rows in order,
    # strings inline rather than in a shared table), so memory stays flat for any number of rows.
    workbook = xlsxwriter.Workbook(out, {"constant_memory": True, "remove_timezone": True})
    with owners_language(context.user_id):
        sheet = workbook.add_worksheet(_("Users"))
        bold = workbook.add_format({"bold": True})
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        for column, name in enumerate(management.EXPORT_COLUMNS):
            sheet.set_column(column, column, USER_COLUMN_WIDTHS[column])
            sheet.write_string(0, column, str(USER_HEADINGS[name]), bold)
        yes, no = _("yes"), _("no")
    sheet.freeze_panes(1, 0)
    row_number = 0
    for batch in management.export_batches(filters):
        for row in batch:
            row_number += 1
            if row_number >= XLSX_MAX_ROWS:  # more came than were counted
                raise TaskFailed(TOO_MANY_ROWS % {"limit": XLSX_MAX_ROWS - 1})
            user_id, email, display_name, status, roles, verified, created_at, last_login_at = row
            sheet.write_number(row_number, 0, user_id)
            sheet.write_string(row_number, 1, email)
            sheet.write_string(row_number, 2, display_name)
            sheet.write_string(row_number, 3, status)
            sheet.write_string(row_number, 4, roles)
            sheet.write_string(row_number, 5, yes if verified else no)
            sheet.write_datetime(row_number, 6, created_at, when)
            if last_login_at is not None:
                sheet.write_datetime(row_number, 7, last_login_at, when)
        progress.step(len(batch))
    if row_number:
        sheet.autofilter(0, 0, row_number, len(management.EXPORT_COLUMNS) - 1)
    workbook.close()
    progress.finish()


def _user_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The /admin/users filters (app/admin/users.py `_filters`), defaults for what is missing."""
    return {
        "q": filters.get("q"),
        "role": filters.get("role"),
        "status": filters.get("status"),
        "verified": filters.get("verified"),
        "sort": filters.get("sort") or "email",
    }


def audit_filter(filters: dict[str, Any]) -> AuditFilter:
    """The /admin/audit filters as the audit trail's AuditFilter (dates as ISO 'YYYY-MM-DD')."""

    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    return AuditFilter(
        actor=filters.get("actor") or None,
        action=filters.get("action") or None,
        target=filters.get("target") or None,
        since=day(filters.get("since")),
        until=day(filters.get("until")),
        request_id=filters.get("request_id") or None,
    )


def render_audit_csv(context: RenderContext, out: BinaryIO) -> None:
    statement = audit_statement(audit_filter(context.filters))
    progress = Progress(context.progress, count_rows(statement))
    safe = management.csv_safe
    with text_output(out) as text:
        writer = csv.writer(text)
        writer.writerow(AUDIT_COLUMNS)
        for batch in queries.stream_rows(statement):
            events = [row[0] for row in batch]
            emails = emails_of({e.actor_user_id for e in events} | {e.subject_user_id for e in events})
            writer.writerows(
                (
                    event.id,
                    event.created_at.isoformat(),
                    safe(event.event),
                    event.actor_user_id or "",
                    safe(emails.get(event.actor_user_id, "")),
                    event.subject_user_id or "",
                    safe(emails.get(event.subject_user_id, "")),
                    safe(event.target or ""),
                    safe(event.ip or ""),
                    safe(event.request_id or ""),
                    safe(orjson.dumps(event.data or {}).decode()),
                )
                for event in events
            )
            progress.step(len(batch))
    progress.finish()
