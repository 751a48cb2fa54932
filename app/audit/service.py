"""Record audit events (and log them) without secrets."""

from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context

from app.audit.models import AuditEvent
from app.core.net import client_address
from app.extensions import db
from app.logging import current_request_id, get_logger, hash_identifier

log = get_logger("hearth.audit")


def record(
    event: str,
    *,
    actor_id: int | None = None,
    subject_id: int | None = None,
    target: str | None = None,
    **data: Any,
) -> AuditEvent:
    """Add an audit event to the current unit of work (the caller commits).

    `target` names what the event is about ("role:editor", "job:<id>"); it defaults to the
    subject user. Changes carry `before` and `after` in `data`."""
    entry = AuditEvent(
        event=event,
        actor_user_id=actor_id,
        subject_user_id=subject_id,
        target=target or (f"user:{subject_id}" if subject_id is not None else None),
        ip=client_address() if has_request_context() else None,
        request_id=current_request_id(),
        data=data,
    )
    db.session.add(entry)
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
