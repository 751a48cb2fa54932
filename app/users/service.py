"""Account rules shared by the browser, the API and the CLI."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from app.audit.service import record
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import ValidationFailed
from app.i18n import LANGUAGE_NAMES, _
from app.logging import get_logger
from app.rbac.catalog import ADMIN_ROLE
from app.rbac.service import role_named, sync_roles
from app.users.models import User
from app.users.passwords import check_new_password, hash_password
from app.users.repository import UserRepository
from app.webhooks.catalogue import role_change_data, user_data
from app.webhooks.service import emit

log = get_logger("hearth.users")
users = UserRepository()
DEFAULT_ADMIN_EMAIL = "admin@hearth.example.com"


@dataclass(frozen=True)
class AdminAccount:
    user: User
    created: bool
    generated_password: str | None


def load_principal(user_id: int) -> User | None:
    """The signed-in user of a request, in one query: roles load only if a view reads them
    (permission checks use the cached permission set instead)."""
    return users.get_principal(user_id)


def load_user(session_user_id: str) -> User | None:
    """The user named by a session's "<id>:<epoch>": an active user whose epoch still matches.

    A bumped epoch (logout everywhere, password change, disable) makes every copied session
    cookie useless. (Flask-Login reaches this through app.auth.session_records.load_session_user,
    which also requires the session's server-side record; remember-me has records of its own.)
    """
    user_id, _colon, epoch = session_user_id.partition(":")
    try:
        user = load_principal(int(user_id))
        expected_epoch = int(epoch)
    except (TypeError, ValueError):
        return None
    if user is None or not user.is_active or user.session_epoch != expected_epoch:
        return None
    return user


def checked_email(email: str) -> str:
    """The address normalised (lower-case); ValidationFailed on the `email` field if it is not one."""
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        # One translatable sentence rather than the validator's English reasons.
        message = _("Enter a valid email address, like name@example.com.")
        raise ValidationFailed(
            message, errors=[{"field": "email", "location": "body", "message": message, "type": "value_error"}]
        ) from None


def set_preferred_locale(user: User, locale: str | None) -> None:
    """Save the language `user` reads the site in ("en", "de"; None: the browser's), audited.
    ValidationFailed on the `locale` field for a language Hearth does not offer."""
    if locale is not None and locale not in LANGUAGE_NAMES:
        message = _("Choose one of the languages offered.")
        raise ValidationFailed(
            message, errors=[{"field": "locale", "location": "body", "message": message, "type": "value_error"}]
        )
    if user.locale == locale:
        return
    with unit_of_work():
        before = user.locale
        user.locale = locale
        record(
            "locale_changed", actor_id=user.id, subject_id=user.id, before={"locale": before}, after={"locale": locale}
        )


def grant_role(user: User, role_name: str) -> None:
    """Give `user` the role (idempotent), in the caller's unit of work."""
    with unit_of_work():
        role = role_named(role_name)
        if role not in user.roles:
            user.roles.append(role)


def ensure_admin(email: str | None, password: str | None) -> AdminAccount:
    """Make sure an administrator exists; idempotent, never resets an existing password.

    With no password given, one is generated and returned once, for the caller to show once.
    """
    # The catalog's roles are written (and committed) first, whatever follows: its own unit.
    sync_roles()
    if email is None:
        admins = users.admins()
        if admins:
            return AdminAccount(admins[0], created=False, generated_password=None)
    address = checked_email(email or DEFAULT_ADMIN_EMAIL)
    existing = users.find_by_email(address)
    if existing is not None:
        if ADMIN_ROLE not in existing.role_names:
            with unit_of_work():
                roles_before = list(existing.role_names)
                grant_role(existing, ADMIN_ROLE)
                emit("role.changed", role_change_data(existing, roles_before, existing.role_names))
        return AdminAccount(existing, created=False, generated_password=None)
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    else:
        check_new_password(password, address, field="ADMIN_PASSWORD")
    with unit_of_work():
        admin = users.add(
            User(
                email=address,
                display_name="Administrator",
                password_hash=hash_password(password),
                email_verified_at=utcnow(),
            )
        )
        users.session.flush()  # the new id and created_at, for the role and the event
        grant_role(admin, ADMIN_ROLE)
        emit("user.created", user_data(admin))
    log.info("admin_created", user_id=admin.id)
    return AdminAccount(admin, created=True, generated_password=generated)
