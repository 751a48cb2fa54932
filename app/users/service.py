"""Account rules shared by the browser, the API and the CLI."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from app.errors import ValidationFailed
from app.extensions import db
from app.logging import get_logger
from app.users.models import User
from app.users.passwords import hash_password
from app.users.repository import UserRepository

log = get_logger("hearth.users")
users = UserRepository()
DEFAULT_ADMIN_EMAIL = "admin@hearth.example.com"


@dataclass(frozen=True)
class AdminAccount:
    user: User
    created: bool
    generated_password: str | None


def load_user(user_id: str) -> User | None:
    """flask-login's user loader: active users only."""
    try:
        user = users.get(int(user_id))
    except (TypeError, ValueError):
        return None
    return user if user is not None and user.is_active else None


def checked_email(email: str) -> str:
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(
            str(exc), errors=[{"field": "email", "location": "body", "message": str(exc), "type": "value_error"}]
        ) from None


def ensure_admin(email: str | None, password: str | None) -> AdminAccount:
    """Make sure an administrator exists; idempotent, never resets an existing password.

    With no password given, one is generated and returned once, for the caller to show once.
    """
    if email is None:
        existing = users.find_one_by(is_admin=True)
        if existing is not None:
            return AdminAccount(existing, created=False, generated_password=None)
    address = checked_email(email or DEFAULT_ADMIN_EMAIL)
    existing = users.find_by_email(address)
    if existing is not None:
        if not existing.is_admin:
            existing.is_admin = True
            db.session.commit()
        return AdminAccount(existing, created=False, generated_password=None)
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    elif len(password) < 12:
        raise ValidationFailed("ADMIN_PASSWORD must be at least 12 characters.")
    admin = users.add(
        User(email=address, display_name="Administrator", password_hash=hash_password(password), is_admin=True)
    )
    db.session.commit()
    log.info("admin_created", user_id=admin.id)
    return AdminAccount(admin, created=True, generated_password=generated)
