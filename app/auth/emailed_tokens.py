"""Single-use tokens sent by email (verify, reset, undo an email change, unlock).

Each is 256 random bits, stored only as its SHA-256, valid for its purpose's lifetime and
used at most once (compare-and-set). Every pending token of a user except an "undo email
change" one dies when the account's security changes (password change or reset, sign out
everywhere, disabling, an email change): a link in an old email must never outlive that.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from app.auth.models import AccountToken
from app.auth.repository import AccountTokenRepository
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import ValidationFailed
from app.i18n import _

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105  (a token purpose, not a secret)
UNDO_EMAIL_CHANGE = "undo_email_change"
UNLOCK_ACCOUNT = "unlock_account"
TOKEN_LIFETIMES = {
    VERIFY_EMAIL: timedelta(hours=24),
    RESET_PASSWORD: timedelta(hours=1),
    # The owner of a stolen account may read the notice days later.
    UNDO_EMAIL_CHANGE: timedelta(days=7),
    UNLOCK_ACCOUNT: timedelta(hours=24),
}
# The owner's way back after a takeover: a password change by the intruder must not kill it.
SURVIVES_REVOCATION = (UNDO_EMAIL_CHANGE,)

account_tokens = AccountTokenRepository()


class InvalidAccountToken(ValidationFailed):
    def __init__(self) -> None:
        super().__init__(_("This link is invalid, already used or expired. Ask for a new one."))


def token_hash(token: str) -> str:
    """How every emailed or refresh token is stored: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user_id: int, purpose: str, email: str | None = None) -> str:
    """A new token, written in the caller's unit of work; returns the raw value for the link."""
    raw = secrets.token_urlsafe(32)
    with unit_of_work():
        account_tokens.add(
            AccountToken(
                user_id=user_id,
                purpose=purpose,
                token_hash=token_hash(raw),
                email=email,
                expires_at=utcnow() + TOKEN_LIFETIMES[purpose],
            )
        )
    return raw


def find_live_token(raw: str, purpose: str) -> AccountToken:
    """The unused, unexpired token for `raw`, or `InvalidAccountToken` (nothing consumed)."""
    token = account_tokens.find(token_hash(raw), purpose)
    if token is None or token.used_at is not None or token.expires_at <= utcnow():
        raise InvalidAccountToken()
    return token


def consume_token(raw: str, purpose: str) -> AccountToken:
    """Mark the token used (compare-and-set, so it works once) and return it; part of the
    caller's unit of work, so a change that then fails leaves the token unused."""
    token = find_live_token(raw, purpose)
    with unit_of_work():
        if not account_tokens.mark_used(token.id, utcnow()):
            raise InvalidAccountToken()
    return token


def revoke_pending_tokens(user_id: int, purposes: tuple[str, ...] | None = None) -> None:
    """End the user's unused tokens (of `purposes`, or all but the undo-email-change ones)."""
    with unit_of_work():
        account_tokens.end_pending(user_id, utcnow(), purposes=purposes, sparing=SURVIVES_REVOCATION)
