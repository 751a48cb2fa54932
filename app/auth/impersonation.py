"""Impersonation ("view as"): an administrator sees the site as one user, read-only, for at
most IMPERSONATION_MINUTES, to help with support.

The rules live here; the browser side (binding the cookie session to the impersonation's
session record, the read-only enforcement, returning to the administrator's own session) is
app.auth.session_records', and the routes are app.admin.impersonation.

- Who may be viewed: never yourself, never a disabled or deleted account, never someone holding
  the admin role, never someone holding any permission the administrator lacks (`refusal`).
- What it is: a `user_sessions` row of the user with `impersonator_id` = the administrator,
  `authenticated_at` NULL (nothing fresh, so no step-up action either) and `expires_at` = now +
  IMPERSONATION_MINUTES.
- What it leaves: `impersonation_started` and `impersonation_stopped` audit events, each with
  the administrator as actor and the user as subject, and a `security.impersonated`
  notification to the user (sent when it starts: it reaches them even when the administrator
  never presses "Stop" and the time box ends it unseen).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import current_app

from app.audit.service import record
from app.auth.models import UserSession
from app.auth.repository import UserSessionRepository
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import PermissionDenied
from app.i18n import _
from app.notifications.service import notify
from app.rbac.catalog import ADMIN_ROLE
from app.rbac.service import permissions_of
from app.users.models import User

PERMISSION = "users:impersonate"
STARTED = "impersonation_started"
STOPPED = "impersonation_stopped"

sessions = UserSessionRepository()


class ReadOnly(PermissionDenied):
    """Any change (an unsafe method) made while viewing as someone, but stopping it."""

    slug = "impersonation-read-only"

    def __init__(self) -> None:
        super().__init__(
            _(
                "You are viewing the site as another user, read-only: nothing can be changed. "
                "Stop viewing as them first."
            )
        )


def _minutes() -> int:
    return current_app.extensions["hearth.settings"].impersonation_minutes


def refusal(admin: User, target: User, admin_permissions: frozenset[str]) -> str | None:
    """Why `admin` may not view the site as `target`, or None when they may."""
    if PERMISSION not in admin_permissions:
        return _("Viewing as another user needs the %(permission)r permission.", permission=PERMISSION)
    if target.id == admin.id:
        return _("You cannot view the site as yourself.")
    if target.deleted_at is not None or not target.is_active:
        return _("This account is disabled: there is nothing to view as it.")
    if ADMIN_ROLE in target.role_names:
        return _("Nobody may view the site as an administrator.")
    if not permissions_of(target.id) <= admin_permissions:
        return _("This account holds permissions you do not have, so you cannot view the site as it.")
    return None


def start(
    admin: User, target: User, admin_permissions: frozenset[str], user_agent: str | None, ip: str | None
) -> UserSession:
    """Begin viewing as `target`: its session record (in this unit of work), the audit event and
    the user's notification. PermissionDenied with the reason when `refusal` says no."""
    reason = refusal(admin, target, admin_permissions)
    if reason is not None:
        raise PermissionDenied(reason)
    now = utcnow()
    minutes = _minutes()
    with unit_of_work():
        row = sessions.add(
            UserSession(
                id=secrets.token_urlsafe(32),
                user_id=target.id,
                user_agent=(user_agent or "")[:300] or None,
                ip=ip,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(minutes=minutes),
                authenticated_at=None,
                impersonator_id=admin.id,
            )
        )
        record(STARTED, actor_id=admin.id, subject_id=target.id, minutes=minutes)
        notify(
            target,
            "security.impersonated",
            params={"admin": admin.display_name, "when": _when(now)},
        )
    return row


def stop(row: UserSession, reason: str) -> bool:
    """End the impersonation `row`, audited with both ids and `reason`: "stopped", "expired",
    "signed_out", or "revoked" (the user's sessions all ended: disabled, deleted, signed out
    everywhere; app.auth.session_records ends impersonations through here first). Revoking
    the record is a compare-and-set, so of everything ending the same one (two requests, a
    request and the periodic close_lapsed) only the first records it: one stop per start.
    Whether this call was that first one."""
    if row.impersonator_id is None:
        raise ValueError("not an impersonation session")
    now = utcnow()
    with unit_of_work():
        if not sessions.revoke_live(row.id, now):
            return False
        record(
            STOPPED,
            actor_id=row.impersonator_id,
            subject_id=row.user_id,
            reason=reason,
            seconds=max(0, int((min(now, row.expires_at) - row.created_at).total_seconds())),
        )
    return True


def close_lapsed(now: datetime | None = None) -> int:
    """Record the end of every impersonation whose time box ran out unseen (the administrator
    closed the tab: no request came to end it), so each `impersonation_started` has its
    `impersonation_stopped`. Periodic (tasks.maintenance); how many it closed."""
    lapsed = sessions.live_impersonations(lapsed_by=now or utcnow())
    # A compare-and-set each: one a request ended meanwhile is recorded (and counted) there.
    return sum(stop(row, "expired") for row in lapsed)


def _when(moment: datetime) -> str:
    """A moment for the stored (English) notification text: the reader's time zone is unknown."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")
