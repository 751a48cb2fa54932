"""Every event an endpoint may subscribe to, in code (listed at GET /api/v1/webhooks/events),
and what each one's `data` holds. The services that make a change emit its event
(app.webhooks.service.emit); the builders here shape `data` once for all of them, and never
include a password hash, token or secret."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from app.i18n import N_

# name -> what it means (English, marked N_: translated where it is listed).
EVENTS: dict[str, str] = {
    "user.created": N_("An account was created (sign-up or an administrator)."),
    "user.updated": N_("An account's profile, email or verification changed, or it was enabled again."),
    "user.disabled": N_("An account was disabled."),
    "user.deleted": N_("An account was deleted."),
    "role.changed": N_("An account's roles changed."),
    "upload.ready": N_("An uploaded file was processed and is ready."),
    "upload.rejected": N_("An uploaded file was rejected or could not be processed."),
    "export.ready": N_("An export finished and can be downloaded."),
    "webhook.test": N_("A test event sent from the endpoint's page or the API."),
}

# Sent only on request to one endpoint, never subscribed to (`send_test`).
TEST_EVENT = "webhook.test"
SUBSCRIBABLE = tuple(name for name in EVENTS if name != TEST_EVENT)


def iso(value: datetime | date | None) -> str | None:
    """A timestamp as ISO 8601 (UTC, with its offset), or None."""
    return value.isoformat() if value is not None else None


def user_data(user: Any) -> dict[str, Any]:
    """`data` of the user.* events: who the account is, never its password hash or tokens."""
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "status": user.status,
        "roles": user.role_names,
        "email_verified": user.email_verified_at is not None,
        "locale": user.locale,
        "created_at": iso(user.created_at),
        "deleted_at": iso(user.deleted_at),
    }


def role_change_data(user: Any, roles_before: list[str], roles_after: list[str]) -> dict[str, Any]:
    """`data` of role.changed."""
    return {"user_id": user.id, "roles_before": sorted(roles_before), "roles_after": sorted(roles_after)}


def upload_data(upload: Any, reason: str | None = None) -> dict[str, Any]:
    """`data` of upload.ready / upload.rejected (`reason`: why it was rejected, in English)."""
    return {
        "id": upload.id,
        "user_id": upload.user_id,
        "filename": upload.filename,
        "kind": upload.kind,
        "content_type": upload.content_type,
        "size": upload.size if upload.size is not None else upload.declared_size,
        "status": str(upload.status),
        "reason": reason,
    }


def export_data(export: Any) -> dict[str, Any]:
    """`data` of export.ready."""
    return {
        "id": export.id,
        "user_id": export.user_id,
        "kind": export.kind,
        "size": export.size,
        "filename": export.filename,
        "expires_at": iso(export.expires_at),
    }
