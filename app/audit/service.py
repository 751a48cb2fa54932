"""Record audit events (and log them) without secrets, and read the trail for the admin."""

from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context

from app.audit.models import AuditEvent
from app.audit.repository import AuditEventRepository, AuditFilter, audit_statement
from app.core.net import client_address
from app.core.pagination import Page, paginate
from app.core.unit_of_work import require_unit_of_work
from app.logging import current_request_id, get_logger, hash_identifier

__all__ = ["AuditFilter", "actions", "emails_of", "list_events", "recent", "recent_about", "record"]

log = get_logger("hearth.audit")
events = AuditEventRepository()


def record(
    event: str,
    *,
    actor_id: int | None = None,
    subject_id: int | None = None,
    target: str | None = None,
    **data: Any,
) -> AuditEvent:
    """Add an audit event to the caller's unit of work (app.core.unit_of_work): it commits
    with the change it records, or not at all.

    `target` names what the event is about ("role:editor", "job:<id>"); it defaults to the
    subject user. Changes carry `before` and `after` in `data`."""
    require_unit_of_work("an audit event")
    entry = events.add(
        AuditEvent(
            event=event,
            actor_user_id=actor_id,
            subject_user_id=subject_id,
            target=target or (f"user:{subject_id}" if subject_id is not None else None),
            ip=client_address() if has_request_context() else None,
            request_id=current_request_id(),
            data=data,
        )
    )
    # The table keeps real ids for the admin UI; log lines carry them hashed, like request lines.
    key = current_app.config["SECRET_KEY"]
    log.info(
        "audit",
        audit_event=event,
        **data,
        target=entry.target if target else None,
        actor=hash_identifier(actor_id, key) if actor_id is not None else None,
        subject=hash_identifier(subject_id, key) if subject_id is not None else None,
    )
    return entry


# Reading ----------------------------------------------------------------------------------


def list_events(filters: AuditFilter, page: int, per_page: int) -> Page[AuditEvent]:
    """One page of the events matching `filters`, newest first (/admin/audit)."""
    return paginate(audit_statement(filters), page, per_page)


def recent(filters: AuditFilter, limit: int = 20) -> list[AuditEvent]:
    """The newest `limit` events matching `filters` (the user and job detail pages)."""
    return events.recent(filters, limit)


def recent_about(user_id: int, names: tuple[str, ...], limit: int = 20) -> list[AuditEvent]:
    """The newest `limit` events named `names` about the user (their account activity)."""
    return events.recent_about(user_id, names, limit)


def actions() -> list[str]:
    """Every event name recorded so far, for the filter's choices."""
    return events.event_names()


def emails_of(user_ids: set[int | None]) -> dict[int, str]:
    """Actor and subject emails for a page of events (or jobs, or uploads): one query, not one per row."""
    ids = {user_id for user_id in user_ids if user_id is not None}
    if not ids:
        return {}
    return events.emails_of(ids)
