"""Record audit events (and log them) without secrets."""

from __future__ import annotations

from typing import Any

import structlog
from flask import has_request_context

from app.audit.models import AuditEvent
from app.core.net import client_address
from app.extensions import db
from app.logging import get_logger

log = get_logger("hearth.audit")


def record(event: str, *, actor_id: int | None = None, subject_id: int | None = None, **data: Any) -> AuditEvent:
    """Add an audit event to the current unit of work (the caller commits)."""
    entry = AuditEvent(
        event=event,
        actor_user_id=actor_id,
        subject_user_id=subject_id,
        ip=client_address() if has_request_context() else None,
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        data=data,
    )
    db.session.add(entry)
    log.info("audit", audit_event=event, actor_id=actor_id, subject_id=subject_id, **data)
    return entry
