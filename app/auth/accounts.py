"""Account lifecycle: sign-up, email verification, password reset and change, profile edits,
undoing an email change and unlocking a locked account.

Nothing here reveals whether an email address has an account: sign-up and reset requests
answer the same, after the same work, whatever the address; what differs is only the email
that is sent. Changing the email address needs the current password, and the old address
is told, with a link that undoes the change and secures the account.
"""

from __future__ import annotations

from app.audit.service import record
from app.auth import lockout
from app.auth.emailed_tokens import (
    RESET_PASSWORD,
    UNDO_EMAIL_CHANGE,
    UNLOCK_ACCOUNT,
    VERIFY_EMAIL,
    InvalidAccountToken,
    consume_token,
    find_live_token,
    issue_token,
    revoke_pending_tokens,
)
from app.auth.service import committed_before_raising, sign_out_everywhere
from app.core.database import utcnow
from app.core.hosts import app_path, public_url_for
from app.core.unit_of_work import unit_of_work
from app.errors import DomainError, NotFound, Unauthorized, ValidationFailed
from app.i18n import _, locale_of
from app.mail.service import queue_email
from app.notifications.service import notify
from app.rbac.catalog import DEFAULT_ROLE
from app.users.models import User
from app.users.passwords import check_new_password, hash_password, verify_password
from app.users.repository import UserRepository
from app.users.service import checked_email, grant_role
from app.webhooks.catalogue import user_data
from app.webhooks.service import emit

users = UserRepository()


class CurrentPasswordInvalid(ValidationFailed):
    """The current password was missing or wrong where a change needs it."""

    slug = "current-password-invalid"

    def __init__(self, detail: str | None = None) -> None:
        detail = detail or _("The current password is not correct.")
        super().__init__(
            detail,
            errors=[{"field": "current_password", "location": "body", "message": detail, "type": "value_error"}],
        )


class TooManyPasswordAttempts(DomainError):
    """This client guessed the password too often; it waits (or the owner unlocks by email)."""

    status, title, slug = 429, "Too many attempts", "too-many-password-attempts"

    def __init__(self) -> None:
        super().__init__(
            _("Too many wrong passwords. Try again later, or reset your password to unlock the account."),
            errors=[
                {
                    "field": "current_password",
                    "location": "body",
                    "message": _("Too many wrong passwords. Try again later."),
                    "type": "locked",
                }
            ],
        )


def check_current_password(user: User, password: str, channel: str) -> None:
    """Confirm the signed-in user's password before a sensitive change.

    Wrong answers count toward the lockout like wrong sign-ins (app.auth.lockout), so a
    stolen session cannot guess the password. A refusal commits what it records in a unit of
    work of its own before raising (`committed_before_raising`), so callers check before they
    open the unit of their change.
    """
    client = lockout.client_key()
    if lockout.locked_until(user, client) is not None:
        with committed_before_raising():
            record("password_check_refused_locked", actor_id=user.id, subject_id=user.id, channel=channel)
        raise TooManyPasswordAttempts()
    if not password:  # not a guess: nothing to count
        raise CurrentPasswordInvalid(_("Enter your current password to make this change."))
    if not verify_password(user.password_hash, password):
        with committed_before_raising():
            lockout.register_failure(user, channel, client)
        raise CurrentPasswordInvalid()


def _send_verification(user: User, address: str) -> None:
    raw = issue_token(user.id, VERIFY_EMAIL, email=address)
    queue_email(
        address,
        "verify_email",
        {"name": user.display_name, "link": public_url_for("auth.verify_email", token=raw), "locale": locale_of(user)},
        user_id=user.id,
    )


def sign_up(email: str, display_name: str, password: str) -> None:
    """Create an account and send its verification link; for a taken address, tell its owner."""
    address = checked_email(email)
    check_new_password(password, address)
    name = display_name.strip()
    if not 1 <= len(name) <= 120:
        raise ValidationFailed(
            _("Enter a display name of 1 to 120 characters."),
            errors=[
                {
                    "field": "display_name",
                    "location": "body",
                    "message": _("Enter 1 to 120 characters."),
                    "type": "value_error",
                }
            ],
        )
    existing = users.find_by_email(address)
    # Hash in both branches: skipping it for a taken address would tell, by the answer's
    # timing alone, which addresses have accounts.
    password_hash = hash_password(password)
    with unit_of_work() as session:
        if existing is not None:
            queue_email(
                address,
                "account_exists",
                {
                    "name": existing.display_name,
                    "login": public_url_for("auth.login"),
                    "reset": public_url_for("auth.reset_request"),
                    "locale": locale_of(existing),
                },
                user_id=existing.id,
            )
            record("signup_for_existing_email", subject_id=existing.id)
            return
        user = users.add(User(email=address, display_name=name, password_hash=password_hash))
        session.flush()  # the new id, for the role, the token and the audit row
        grant_role(user, DEFAULT_ROLE)
        _send_verification(user, address)
        record("signup", actor_id=user.id, subject_id=user.id)
        emit("user.created", user_data(user))


def verify_email(raw: str) -> User:
    """Confirm the address the token was sent to (a new address, for an email change).

    Taking a new address ends every other pending link of the account (older changes,
    verifications and resets), so no old link can take the account anywhere else.
    """
    with unit_of_work():
        token = consume_token(raw, VERIFY_EMAIL)
        user = users.get(token.user_id)
        if token.email and token.email != user.email:
            if users.find_by_email(token.email) is not None:
                raise InvalidAccountToken()  # the unit rolls back: the token stays unused
            record("email_changed", actor_id=user.id, subject_id=user.id)
            user.email = token.email
            revoke_pending_tokens(user.id)
        user.email_verified_at = utcnow()
        record("email_verified", actor_id=user.id, subject_id=user.id)
        emit("user.updated", user_data(user))
    return user


def record_email_link_sign_in(user: User) -> None:
    """The verification link signed its account in on a browser (app.auth.routes
    `verify_email`): audited like any sign-in, with the link as its channel."""
    with unit_of_work():
        user.last_login_at = utcnow()
        record("login_succeeded", actor_id=user.id, subject_id=user.id, channel="email_link")


def resend_verification(user: User) -> None:
    if user.email_verified_at is None:
        with unit_of_work():
            _send_verification(user, user.email)
            record("verification_resent", actor_id=user.id, subject_id=user.id)


def request_password_reset(email: str) -> None:
    """Email a reset link if the address has an account; the caller answers the same either way."""
    try:
        address = checked_email(email)
    except ValidationFailed:
        return
    user = users.find_by_email(address)
    with unit_of_work():
        if user is None or not user.is_active:
            record("password_reset_requested", reason="no_account")
            return
        send_password_reset_link(user)
        record("password_reset_requested", subject_id=user.id)


def send_password_reset_link(user: User) -> None:
    """Queue the reset email in the caller's unit of work (the caller records it)."""
    with unit_of_work():
        raw = issue_token(user.id, RESET_PASSWORD)
        queue_email(
            user.email,
            "password_reset",
            {
                "name": user.display_name,
                "link": public_url_for("auth.reset_password", token=raw),
                "locale": locale_of(user),
            },
            user_id=user.id,
        )


def check_reset_token(raw: str) -> None:
    """Raise unless `raw` is a live reset token (for showing the form; nothing is consumed)."""
    find_live_token(raw, RESET_PASSWORD)


def reset_password(raw: str, new_password: str) -> User:
    """Set a new password from a reset link; every session and API token of the user ends,
    and every lock of the account too (the owner proved control of the mailbox). A refused
    password rolls the unit back: the link stays usable."""
    with unit_of_work():
        token = consume_token(raw, RESET_PASSWORD)
        user = users.get(token.user_id)
        check_new_password(new_password, user.email)
        user.password_hash = hash_password(new_password)
        lockout.unlock_account(user)
        record("password_reset", actor_id=user.id, subject_id=user.id)
        sign_out_everywhere(user, reason="password_reset")
        _notify_password_changed(user)
    return user


def change_password(user: User, current: str, new_password: str) -> None:
    """Change a password knowing the current one; every other session and token ends."""
    # Before the change's unit: a wrong guess is committed (its own unit) although this raises.
    check_current_password(user, current, channel="account")
    with unit_of_work():
        check_new_password(new_password, user.email, field="new_password")
        user.password_hash = hash_password(new_password)
        record("password_changed", actor_id=user.id, subject_id=user.id)
        sign_out_everywhere(user, reason="password_changed")
        _notify_password_changed(user)


def _notify_password_changed(user: User) -> None:
    """The security notice (always emailed too), in the caller's unit of work; its link asks
    for a reset, in case it was not the owner."""
    notify(user, "security.password_changed", link=app_path("auth.reset_request"))


def update_profile(user: User, display_name: str, email: str, current_password: str | None = None) -> bool:
    """Save the display name; a new email is only taken once its verification link is used.

    Asking for a new address needs the current password (a stolen session or token must
    not move the account), ends older pending changes, and tells the old address, with a
    link that undoes the change. Returns True when a change of address was requested.
    """
    name = display_name.strip()
    if not 1 <= len(name) <= 120:
        message = _("Enter a display name of 1 to 120 characters.")
        raise ValidationFailed(
            message,
            errors=[{"field": "display_name", "location": "body", "message": message, "type": "value_error"}],
        )
    address = checked_email(email)
    pending = address != user.email
    if pending:
        # Before the change's unit: a wrong guess is committed (its own unit) although this raises.
        check_current_password(user, current_password or "", channel="email_change")
    with unit_of_work():
        renamed = user.display_name != name
        user.display_name = name
        if pending:
            revoke_pending_tokens(user.id, purposes=(VERIFY_EMAIL,))
            if users.find_by_email(address) is None:
                _send_verification(user, address)
            undo = issue_token(user.id, UNDO_EMAIL_CHANGE, email=user.email)
            queue_email(
                user.email,
                "email_change_requested",
                {
                    "name": user.display_name,
                    "new_address": address,
                    "undo": public_url_for("auth.undo_email_change", token=undo),
                    "locale": locale_of(user),
                },
                user_id=user.id,
            )
            record("email_change_requested", actor_id=user.id, subject_id=user.id)
        record("profile_updated", actor_id=user.id, subject_id=user.id)
        if renamed:  # a new address is announced once verified (verify_email)
            emit("user.updated", user_data(user))
    return pending


def address_to_restore(raw: str) -> str:
    """The address an undo link puts back (for showing the confirmation; nothing is consumed)."""
    return find_live_token(raw, UNDO_EMAIL_CHANGE).email or ""


def undo_email_change(raw: str) -> str:
    """The owner, from the old mailbox: put the old address back, end every session, token
    and pending link, and return a fresh password-reset token to secure the account."""
    with unit_of_work():
        token = consume_token(raw, UNDO_EMAIL_CHANGE)
        user = users.get(token.user_id)
        restored = token.email or user.email
        before = (user.email, user.email_verified_at)
        holder = users.find_by_email(restored)
        if holder is None or holder.id == user.id:
            user.email = restored
            user.email_verified_at = utcnow()
        revoke_pending_tokens(user.id, purposes=(UNDO_EMAIL_CHANGE,))
        sign_out_everywhere(user, reason="email_change_undone")
        lockout.unlock_account(user)
        record(
            "email_change_undone", actor_id=user.id, subject_id=user.id, restored=holder is None or holder.id == user.id
        )
        if (user.email, user.email_verified_at) != before:
            emit("user.updated", user_data(user))
        reset = issue_token(user.id, RESET_PASSWORD)
    return reset


def check_unlock_token(raw: str) -> None:
    find_live_token(raw, UNLOCK_ACCOUNT)


def unlock_account(raw: str) -> User:
    """The emailed unlock link: every lock of the account ends (the owner reads its mail)."""
    with unit_of_work():
        token = consume_token(raw, UNLOCK_ACCOUNT)
        user = users.get(token.user_id)
        lockout.unlock_account(user)
        record("account_unlocked", actor_id=user.id, subject_id=user.id)
    return user


def require_password(user: User, password: str) -> None:
    if not verify_password(user.password_hash, password):
        raise Unauthorized(_("The password is not correct."))


def set_password(email: str, password: str) -> User:
    """Replace a user's password and end every session and token they hold (`flask users set-password`)."""
    user = users.find_by_email(email)
    if user is None:
        raise NotFound(_("No user with email %(email)r.", email=email))
    check_new_password(password, user.email)
    with unit_of_work():
        user.password_hash = hash_password(password)
        user.failed_login_count = 0
        user.locked_until = None
        record("password_changed", subject_id=user.id, by="cli")
        sign_out_everywhere(user, reason="password_changed")
        _notify_password_changed(user)
    return user
