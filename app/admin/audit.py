"""`/admin/audit`: the audit trail filtered by actor, action, target, request and date range."""

from __future__ import annotations

from datetime import date

from flask import request

from app.admin.common import admin_bp, render_list
from app.audit.service import AuditFilter, actions, emails_of, list_events
from app.auth.guards import permission_required

PAGE_SIZE = 50


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@admin_bp.get("/audit")
@permission_required("audit:read")
def audit() -> str:
    args = request.args
    filters = AuditFilter(
        actor=(args.get("actor") or "").strip()[:100] or None,
        action=args.get("action") or None,
        target=(args.get("target") or "").strip()[:160] or None,
        since=_day(args.get("since")),
        until=_day(args.get("until")),
        request_id=(args.get("request_id") or "").strip()[:128] or None,
    )
    bad_dates = [name for name in ("since", "until") if args.get(name) and _day(args.get(name)) is None]
    page = list_events(filters, args.get("page", 1, type=int), PAGE_SIZE)
    return render_list(
        "admin/audit/index.html",
        "admin/audit/_list.html",
        page=page,
        filters=filters,
        actions=actions(),
        emails=emails_of({e.actor_user_id for e in page.items} | {e.subject_user_id for e in page.items}),
        bad_dates=bad_dates,
    )
