"""Recent security activity of an account, for its owner (/account/security): sign-ins and
refusals, password, email, two-factor, passkey and API key changes, and every time an
administrator viewed the account ("view as", app.auth.impersonation).

Read from the audit trail (the events about the user, newest first; one indexed query), each
event told in the reader's language. Only what the owner may see: the administrator is named
by display name, never by email or id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.audit.service import recent_about
from app.i18n import _, _l
from app.users.repository import UserRepository

LIMIT = 20
IMPERSONATION_STARTED = "impersonation_started"

# Each event shown, and what it says. Lazy strings: translated when the page renders.
DESCRIPTIONS: dict[str, Any] = {
    "login_succeeded": _l("Signed in"),
    "signed_in_remembered": _l("Signed in again by a remembered browser"),
    "login_failed": _l("Wrong password at sign-in"),
    "login_refused_locked": _l("Sign-in refused: too many wrong passwords"),
    "account_locked": _l("Sign-in locked after wrong passwords"),
    "account_unlocked": _l("Account unlocked"),
    "second_factor_failed": _l("Wrong two-factor code"),
    "passkey_refused": _l("A passkey was refused"),
    "reauthenticated": _l("Confirmed it was you for a sensitive action"),
    "logout": _l("Signed out"),
    "signed_out_everywhere": _l("Signed out everywhere"),
    "session_revoked": _l("A browser session was signed out"),
    "remember_token_reused": _l("A copied “keep me signed in” cookie was refused"),
    "refresh_token_reused": _l("A copied API token was refused; that API sign-in ended"),
    "password_changed": _l("Password changed"),
    "password_reset": _l("Password reset by email link"),
    "password_reset_sent_by_admin": _l("An administrator sent you a password reset link"),
    "email_change_requested": _l("Change of email address requested"),
    "email_changed": _l("Email address changed"),
    "totp_enabled": _l("Authenticator app set up"),
    "totp_disabled": _l("Authenticator app removed"),
    "two_factor_enabled": _l("Two-factor authentication turned on"),
    "two_factor_disabled": _l("Two-factor authentication turned off"),
    "recovery_codes_generated": _l("New recovery codes made"),
    "recovery_codes_regenerated": _l("New recovery codes made"),
    "recovery_code_used": _l("A recovery code was used"),
    "passkey_registered": _l("Passkey added"),
    "passkey_renamed": _l("Passkey renamed"),
    "passkey_removed": _l("Passkey removed"),
    "api_key_created": _l("API key created"),
    "api_key_revoked": _l("API key revoked"),
    "api_tokens_issued": _l("Signed in to the API"),
    "api_sign_in_revoked": _l("An API sign-in was revoked"),
}
EVENTS: tuple[str, ...] = (*DESCRIPTIONS, IMPERSONATION_STARTED)

users = UserRepository()


@dataclass(frozen=True)
class SecurityEvent:
    """One line of the activity list. `administrator`: for a "view as", who viewed (their
    display name; their address and id are theirs, not the account's)."""

    at: datetime
    event: str
    description: str
    ip: str | None
    by_administrator: bool
    administrator: str | None = None

    @property
    def viewed_by_administrator(self) -> bool:
        return self.event == IMPERSONATION_STARTED


def recent_for(user_id: int, limit: int = LIMIT) -> list[SecurityEvent]:
    """The account's newest security events (at most `limit`), newest first."""
    rows = recent_about(user_id, EVENTS, limit)
    admin_ids = {row.actor_user_id for row in rows if row.event == IMPERSONATION_STARTED and row.actor_user_id}
    names = {admin_id: _name(admin_id) for admin_id in admin_ids}
    return [_describe(row, names) for row in rows]


def _name(user_id: int) -> str | None:
    user = users.get(user_id)
    return user.display_name if user is not None else None


def _describe(row: Any, names: dict[int, str | None]) -> SecurityEvent:
    if row.event == IMPERSONATION_STARTED:
        name = names.get(row.actor_user_id)
        description = _("An administrator viewed your account, read-only.")
        return SecurityEvent(row.created_at, row.event, description, None, True, name)
    by_admin = row.actor_user_id is not None and row.actor_user_id != row.subject_user_id
    return SecurityEvent(row.created_at, row.event, str(DESCRIPTIONS[row.event]), row.ip, by_admin)
