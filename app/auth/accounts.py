"""Account lifecycle: sign-up, email verification, password reset and change, profile edits.

Nothing here reveals whether an email address has an account: sign-up and reset requests
answer the same whatever the address, and what differs is only the email that is sent.
Tokens sent by email are single-use, expire, and are stored only as SHA-256 hashes.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import url_for
from sqlalchemy import select, update

from app.audit.service import record
from app.auth.models import AccountToken
from app.auth.service import sign_out_everywhere, token_hash
from app.core.database import utcnow
from app.errors import Unauthorized, ValidationFailed
from app.extensions import db
from app.mail.service import queue_email
from app.rbac.catalog import DEFAULT_ROLE
from app.users.models import User
from app.users.passwords import check_new_password, hash_password, verify_password
from app.users.repository import UserRepository
from app.users.service import checked_email, grant_role

users = UserRepository()

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105  (a token purpose, not a secret)
TOKEN_LIFETIMES = {VERIFY_EMAIL: timedelta(hours=24), RESET_PASSWORD: timedelta(hours=1)}


class InvalidAccountToken(ValidationFailed):
    def __init__(self) -> None:
        super().__init__("This link is invalid, already used or expired. Ask for a new one.")


def _issue_token(user: User, purpose: str, email: str | None = None) -> str:
    raw = secrets.token_urlsafe(32)
    db.session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=token_hash(raw),
            email=email,
            expires_at=utcnow() + TOKEN_LIFETIMES[purpose],
        )
    )
    return raw


def _consume_token(raw: str, purpose: str) -> AccountToken:
    """Mark the token used (compare-and-set, so it works once) and return it."""
    now = utcnow()
    token = db.session.scalar(
        select(AccountToken).where(AccountToken.token_hash == token_hash(raw), AccountToken.purpose == purpose)
    )
    if token is None or token.used_at is not None or token.expires_at <= now:
        raise InvalidAccountToken()
    used = db.session.execute(
        update(AccountToken).where(AccountToken.id == token.id, AccountToken.used_at.is_(None)).values(used_at=now)
    ).rowcount
    if used != 1:
        raise InvalidAccountToken()
    return token


def _send_verification(user: User, address: str) -> None:
    raw = _issue_token(user, VERIFY_EMAIL, email=address)
    queue_email(
        address,
        "verify_email",
        {"name": user.display_name, "link": url_for("auth.verify_email", token=raw, _external=True)},
        user_id=user.id,
    )


def sign_up(email: str, display_name: str, password: str) -> None:
    """Create an account and send its verification link; for a taken address, tell its owner."""
    address = checked_email(email)
    check_new_password(password, address)
    name = display_name.strip()
    if not 1 <= len(name) <= 120:
        raise ValidationFailed(
            "Enter a display name of 1 to 120 characters.",
            errors=[
                {
                    "field": "display_name",
                    "location": "body",
                    "message": "Enter 1 to 120 characters.",
                    "type": "value_error",
                }
            ],
        )
    existing = users.find_by_email(address)
    if existing is not None:
        queue_email(
            address,
            "account_exists",
            {
                "name": existing.display_name,
                "login": url_for("auth.login", _external=True),
                "reset": url_for("auth.reset_request", _external=True),
            },
            user_id=existing.id,
        )
        record("signup_for_existing_email", subject_id=existing.id)
        db.session.commit()
        return
    user = users.add(User(email=address, display_name=name, password_hash=hash_password(password)))
    db.session.flush()
    grant_role(user, DEFAULT_ROLE)
    _send_verification(user, address)
    record("signup", actor_id=user.id, subject_id=user.id)
    db.session.commit()


def verify_email(raw: str) -> User:
    """Confirm the address the token was sent to (a new address, for an email change)."""
    token = _consume_token(raw, VERIFY_EMAIL)
    user = db.session.get(User, token.user_id)
    if token.email and token.email != user.email:
        if users.find_by_email(token.email) is not None:
            db.session.rollback()
            raise InvalidAccountToken()
        record("email_changed", actor_id=user.id, subject_id=user.id)
        user.email = token.email
    user.email_verified_at = utcnow()
    record("email_verified", actor_id=user.id, subject_id=user.id)
    db.session.commit()
    return user


def resend_verification(user: User) -> None:
    if user.email_verified_at is None:
        _send_verification(user, user.email)
        record("verification_resent", actor_id=user.id, subject_id=user.id)
        db.session.commit()


def request_password_reset(email: str) -> None:
    """Email a reset link if the address has an account; the caller answers the same either way."""
    try:
        address = checked_email(email)
    except ValidationFailed:
        return
    user = users.find_by_email(address)
    if user is None or not user.is_active:
        record("password_reset_requested", reason="no_account")
        db.session.commit()
        return
    send_password_reset_link(user)
    record("password_reset_requested", subject_id=user.id)
    db.session.commit()


def send_password_reset_link(user: User) -> None:
    """Queue the reset email in the caller's unit of work (the caller records and commits)."""
    raw = _issue_token(user, RESET_PASSWORD)
    queue_email(
        user.email,
        "password_reset",
        {"name": user.display_name, "link": url_for("auth.reset_password", token=raw, _external=True)},
        user_id=user.id,
    )


def check_reset_token(raw: str) -> None:
    """Raise unless `raw` is a live reset token (for showing the form; nothing is consumed)."""
    token = db.session.scalar(
        select(AccountToken).where(AccountToken.token_hash == token_hash(raw), AccountToken.purpose == RESET_PASSWORD)
    )
    if token is None or token.used_at is not None or token.expires_at <= utcnow():
        raise InvalidAccountToken()


def reset_password(raw: str, new_password: str) -> User:
    """Set a new password from a reset link; every session and API token of the user ends."""
    token = _consume_token(raw, RESET_PASSWORD)
    user = db.session.get(User, token.user_id)
    check_new_password(new_password, user.email)
    user.password_hash = hash_password(new_password)
    user.failed_login_count = 0
    user.locked_until = None
    record("password_reset", actor_id=user.id, subject_id=user.id)
    sign_out_everywhere(user, reason="password_reset")
    return user


def change_password(user: User, current: str, new_password: str) -> None:
    """Change a password knowing the current one; every other session and token ends."""
    if not verify_password(user.password_hash, current):
        raise ValidationFailed(
            "The current password is not correct.",
            errors=[
                {
                    "field": "current_password",
                    "location": "body",
                    "message": "The current password is not correct.",
                    "type": "value_error",
                }
            ],
        )
    check_new_password(new_password, user.email, field="new_password")
    user.password_hash = hash_password(new_password)
    record("password_changed", actor_id=user.id, subject_id=user.id)
    sign_out_everywhere(user, reason="password_changed")


def update_profile(user: User, display_name: str, email: str) -> bool:
    """Save the display name; a new email is only taken once its verification link is used.

    Returns True when a verification link was sent to a new address.
    """
    name = display_name.strip()
    if not 1 <= len(name) <= 120:
        raise ValidationFailed("Enter a display name of 1 to 120 characters.")
    user.display_name = name
    address = checked_email(email)
    pending = address != user.email
    if pending:
        if users.find_by_email(address) is None:
            _send_verification(user, address)
        record("email_change_requested", actor_id=user.id, subject_id=user.id)
    record("profile_updated", actor_id=user.id, subject_id=user.id)
    db.session.commit()
    return pending


def require_password(user: User, password: str) -> None:
    if not verify_password(user.password_hash, password):
        raise Unauthorized("The password is not correct.")
