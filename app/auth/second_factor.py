"""Second factors as a whole: enrolling and removing an authenticator app, recovery codes,
checking a code at sign-in or step-up, the `two_factor_enabled` flag, and the
REQUIRE_2FA_FOR_ROLES policy.

A user has two-factor authentication when they have a confirmed authenticator app (TOTP) or
at least one passkey (app.auth.passkeys); `users.two_factor_enabled` says so, kept in step
only by `sync_two_factor_flag`. Recovery codes belong to the account's two-factor as a whole:
they survive removing the app while a passkey remains, and go when the last factor goes.

Wrong codes count toward the sign-in lockout exactly like wrong passwords (app.auth.lockout):
per client and account first, so neither a stolen password nor a stolen session can guess
codes for long. No code or secret is ever logged or recorded in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, abort, current_app, flash, g, has_request_context, redirect, request, session, url_for
from flask_login import current_user
from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session

from app.audit.service import record
from app.auth import lockout, totp
from app.auth.cache import forget_family
from app.auth.models import Passkey
from app.auth.refusals import committed_before_raising
from app.auth.repository import RefreshTokenRepository
from app.auth.session_records import PASSIVE_ATTR, current_record, revoke_all_sessions, revoke_other_sessions
from app.cache import CacheKey, bump, cached, invalidate
from app.core.database import utcnow
from app.core.hosts import app_path
from app.core.secrets import SecretUnreadable
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from app.extensions import db
from app.i18n import _
from app.notifications.service import notify
from app.pipeline import add_browser_hooks
from app.rbac.models import Role
from app.rbac.service import role_names_of
from app.users.models import User

METHOD_TOTP = "totp"
METHOD_RECOVERY_CODE = "recovery_code"
ROLES_NAMESPACE = "user-roles"
ROLES_TTL = 300


refresh_tokens = RefreshTokenRepository()


class InvalidSecondFactor(ValidationFailed):
    """A code that is neither a current authenticator code nor an unused recovery code."""

    slug = "invalid-second-factor"

    def __init__(self, detail: str | None = None, field: str = "code") -> None:
        detail = detail or _("That code is not valid. Enter a current code from your app, or a recovery code.")
        super().__init__(
            detail, errors=[{"field": field, "location": "body", "message": detail, "type": "value_error"}]
        )


class TooManySecondFactorAttempts(DomainError):
    """This client got codes (or passwords) wrong too often for this account; it waits."""

    status, title, slug = 429, "Too many attempts", "too-many-second-factor-attempts"

    def __init__(self) -> None:
        detail = _("Too many wrong codes. Try again later.")
        super().__init__(detail, errors=[{"field": "code", "location": "body", "message": detail, "type": "locked"}])


class TotpAlreadyEnabled(Conflict):
    slug = "totp-already-enabled"

    def __init__(self) -> None:
        super().__init__(_("An authenticator app is already set up. Remove it first to set up another."))


class NoTotpEnrolment(Conflict):
    slug = "no-totp-enrolment"

    def __init__(self) -> None:
        super().__init__(_("Start setting up an authenticator app first."))


class TwoFactorNotEnabled(Conflict):
    slug = "two-factor-not-enabled"

    def __init__(self) -> None:
        super().__init__(_("Set up two-factor authentication first."))


class TwoFactorSetupRequired(PermissionDenied):
    """REQUIRE_2FA_FOR_ROLES: this account must set up a second factor before signing in here."""

    slug = "two-factor-setup-required"

    def __init__(self) -> None:
        super().__init__(
            _(
                "Your role requires two-factor authentication. Sign in with a browser and set it up on "
                "/account/security (an authenticator app or a passkey), then ask for tokens again."
            )
        )


# The flag ----------------------------------------------------------------------------------


def _passkey_count(user_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id))


NEW_RECOVERY_CODES = "hearth_new_recovery_codes"  # `g`: codes made by turning two-factor on


def sync_two_factor_flag(user: User) -> bool:
    """Set `two_factor_enabled` from what the user has (a confirmed app, or a passkey), in the
    caller's unit of work; with no factor left, the recovery codes go too. Returns the flag.

    Turning it on (`_turned_on`) ends every sign-in from before but this one, and makes the
    recovery codes when the first factor is a passkey (`take_new_recovery_codes`)."""
    with unit_of_work() as orm_session:
        orm_session.flush()  # a passkey or app just added or removed counts
        enabled = totp.is_confirmed(user.id) or _passkey_count(user.id) > 0
        if not enabled:
            totp.remove_recovery_codes(user.id)
        if user.two_factor_enabled != enabled:
            user.two_factor_enabled = enabled
            record("two_factor_enabled" if enabled else "two_factor_disabled", actor_id=user.id, subject_id=user.id)
            if enabled:
                _turned_on(user)
    return enabled


def _turned_on(user: User) -> None:
    """Two-factor just came on. A session, remember-me cookie or refresh token made before it
    proved only the password, which may be what leaked: every one ends but this request's own
    browser session or API sign-in. And an account whose first factor is a passkey gets its
    recovery codes now (an app's confirmation makes its own), for the channel to show once."""
    if has_request_context():
        revoke_other_sessions(user.id)
        keep_family = g.get("api_family")
    else:
        revoke_all_sessions(user.id)
        keep_family = None
    for family_id in refresh_tokens.revoke_all_of(user.id, utcnow(), keep_family=keep_family):
        forget_family(family_id)
    record("sign_ins_ended_for_two_factor", actor_id=user.id, subject_id=user.id)
    if totp.remaining_recovery_codes(user.id) == 0:
        codes = totp.new_recovery_codes(user.id)
        record("recovery_codes_generated", actor_id=user.id, subject_id=user.id)
        if has_request_context():
            setattr(g, NEW_RECOVERY_CODES, codes)


def take_new_recovery_codes() -> list[str] | None:
    """The recovery codes this request made by turning two-factor on with a passkey, once."""
    return g.pop(NEW_RECOVERY_CODES, None)


# Authenticator app -------------------------------------------------------------------------


def _issuer() -> str:
    return current_app.extensions["hearth.settings"].webauthn_rp_name


def begin_totp_enrolment(user: User) -> totp.Enrolment:
    """A new secret for the user's authenticator app, not active until `confirm_totp`; it
    replaces one not yet confirmed. Refused (`TotpAlreadyEnabled`) while one is confirmed."""
    if totp.is_confirmed(user.id):
        raise TotpAlreadyEnabled()
    with unit_of_work():
        secret = totp.store_new_secret(user.id)
        record("totp_enrolment_started", actor_id=user.id, subject_id=user.id)
    return totp.Enrolment(secret, totp.otpauth_uri(secret, user.email, _issuer()))


def pending_totp_enrolment(user: User) -> totp.Enrolment | None:
    """The enrolment started and not yet confirmed, if any (to show its secret again)."""
    credential = totp.credential_of(user.id)
    if credential is None or credential.confirmed_at is not None:
        return None
    secret = totp.secret_of(credential)
    return totp.Enrolment(secret, totp.otpauth_uri(secret, user.email, _issuer()))


def confirm_totp(user: User, code: str) -> list[str]:
    """Activate the pending authenticator app with a current code from it; returns a new set
    of recovery codes (shown once). A wrong code is `InvalidSecondFactor` (not counted toward
    the lockout: nothing is guessed against an account's factor here)."""
    credential = totp.credential_of(user.id)
    if credential is None:
        raise NoTotpEnrolment()
    if credential.confirmed_at is not None:
        raise TotpAlreadyEnabled()
    try:
        secret = totp.secret_of(credential)
    except SecretUnreadable:
        raise NoTotpEnrolment() from None  # stored under an older SECRET_KEY: start again
    step = totp.matching_step(secret, totp.normalised(code))
    if step is None:
        raise InvalidSecondFactor(_("That code is not right. Enter the 6 digits your app shows now."))
    with unit_of_work():
        totp.confirm(credential, step)
        codes = totp.new_recovery_codes(user.id)
        record("totp_enabled", actor_id=user.id, subject_id=user.id)
        record("recovery_codes_generated", actor_id=user.id, subject_id=user.id)
        sync_two_factor_flag(user)
    return codes


def cancel_totp_enrolment(user: User) -> None:
    """Drop an enrolment that was never confirmed (a confirmed app stays: see `disable_totp`)."""
    credential = totp.credential_of(user.id)
    if credential is None or credential.confirmed_at is not None:
        return
    with unit_of_work():
        totp.remove(user.id)
        record("totp_enrolment_cancelled", actor_id=user.id, subject_id=user.id)


def disable_totp(user: User) -> None:
    """Remove the user's authenticator app (the caller checked a code or the password and that
    the sign-in is fresh). Recovery codes stay while a passkey remains."""
    if totp.credential_of(user.id) is None:
        raise TwoFactorNotEnabled()
    with unit_of_work():
        totp.remove(user.id)
        record("totp_disabled", actor_id=user.id, subject_id=user.id)
        sync_two_factor_flag(user)


def remove_all(user: User) -> bool:
    """Remove every second factor of `user` (app, pending enrolment, passkeys, recovery codes),
    in the caller's unit of work: for someone who lost their device and their codes (an
    administrator's reset, app.users.management `reset_two_factor`). Whether there was any."""
    with unit_of_work() as orm_session:
        had_app = totp.remove(user.id)
        passkeys = db.session.scalars(select(Passkey).where(Passkey.user_id == user.id)).all()
        for passkey in passkeys:
            orm_session.delete(passkey)
        sync_two_factor_flag(user)
    return had_app or bool(passkeys)


def regenerate_recovery_codes(user: User) -> list[str]:
    """A new set of recovery codes; the old set stops working. Needs two-factor enabled."""
    if not user.two_factor_enabled:
        raise TwoFactorNotEnabled()
    with unit_of_work():
        codes = totp.new_recovery_codes(user.id)
        record("recovery_codes_regenerated", actor_id=user.id, subject_id=user.id)
    return codes


def has_totp(user: User) -> bool:
    return totp.is_confirmed(user.id)


def remaining_recovery_codes(user: User) -> int:
    return totp.remaining_recovery_codes(user.id)


# Checking a code ---------------------------------------------------------------------------


def refuse_if_locked(user: User, channel: str, client: str | None = None) -> None:
    """`TooManySecondFactorAttempts` while this client is locked out of this account."""
    client = client or lockout.client_key()
    if lockout.locked_until(user, client) is not None:
        with committed_before_raising():
            record("second_factor_refused_locked", subject_id=user.id, channel=channel)
        raise TooManySecondFactorAttempts()


def register_failure(user: User, channel: str, method: str, client: str | None = None) -> None:
    """One wrong second factor (a code, a passkey) from this client, counted toward the lockout
    like a wrong password and committed at once (call it outside any unit of work)."""
    with committed_before_raising():
        record("second_factor_failed", subject_id=user.id, channel=channel, method=method)
        lockout.register_failure(user, channel, client)


def verify_code(user: User, code: str, channel: str) -> str:
    """Check a second-factor code of `user`: a current authenticator code (each time step once)
    or an unused recovery code (used up; the user is notified). Returns "totp" or
    "recovery_code". A wrong code counts toward the lockout and raises `InvalidSecondFactor`;
    a locked-out client gets `TooManySecondFactorAttempts`. Call it outside a unit of work."""
    client = lockout.client_key()
    refuse_if_locked(user, channel, client)
    typed = totp.normalised(code)
    if totp.looks_like_totp(typed) and totp.accept_code(user.id, typed):
        return METHOD_TOTP
    if totp.looks_like_recovery_code(typed):
        with unit_of_work():
            used = totp.use_recovery_code(user.id, typed)
            if used:
                remaining = totp.remaining_recovery_codes(user.id)
                record("recovery_code_used", actor_id=user.id, subject_id=user.id, channel=channel, remaining=remaining)
                notify(
                    user,
                    "security.recovery_code_used",
                    params={"remaining": remaining},
                    link=app_path("account.security"),
                )
        if used:
            return METHOD_RECOVERY_CODE
    if not typed:  # nothing typed is not a guess
        raise InvalidSecondFactor(_("Enter a code from your authenticator app, or a recovery code."))
    register_failure(user, channel, "code", client)
    raise InvalidSecondFactor()


# REQUIRE_2FA_FOR_ROLES ---------------------------------------------------------------------


def role_names(user: User) -> frozenset[str]:
    """The user's role names: from the row when its roles are loaded, else cached (L1, then
    L2, then one query), dropped when the user's roles or any role change (below)."""
    if "roles" in user.__dict__:
        return frozenset(role.name for role in user.roles)
    return cached(
        CacheKey(ROLES_NAMESPACE, str(user.id)),
        lambda: frozenset(role_names_of(user.id)),
        timeout=ROLES_TTL,
        local=True,
    )


@event.listens_for(Session, "before_flush")
def _forget_changed_roles(orm_session: Session, flush_context, instances) -> None:
    """Invalidators of `role_names`: a user whose roles change drops theirs; a role renamed or
    deleted drops everyone's (run after the commit, app.cache.aside)."""
    for obj in (*orm_session.dirty, *orm_session.deleted):
        if isinstance(obj, User) and inspect(obj).attrs.roles.history.has_changes():
            invalidate(CacheKey(ROLES_NAMESPACE, str(obj.id)))
        elif isinstance(obj, Role):
            bump(ROLES_NAMESPACE)


def required_for(user: User, roles: Iterable[str] | None = None) -> bool:
    """Whether REQUIRE_2FA_FOR_ROLES asks `user` for a second factor they do not have yet."""
    if user.two_factor_enabled:
        return False
    roles = current_app.extensions["hearth.settings"].require_2fa_for_roles if roles is None else roles
    return bool(roles) and not role_names(user).isdisjoint(roles)


def refuse_tokens_without_second_factor(user: User) -> None:
    """The API's password grant for a user the policy asks to set up a second factor first."""
    if required_for(user):
        with committed_before_raising():
            record("login_refused_two_factor_setup", subject_id=user.id, channel="api")
        raise TwoFactorSetupRequired()


# Pages open while a second factor must be set up: the security page and its forms, passkey
# registration, sign-out, re-authentication, static files and health checks.
SETUP_ENDPOINTS = frozenset({"account.security", "auth.logout", "static"})
SETUP_PREFIXES = (
    "account.security_",
    "account.totp_",
    "account.recovery_codes_",
    "account.passkey_",
    "auth.reauth",
    "auth.continue",
    "health.",
)


def _exempt(endpoint: str) -> bool:
    if endpoint in SETUP_ENDPOINTS or endpoint.startswith(SETUP_PREFIXES):
        return True
    view = current_app.view_functions.get(endpoint)
    return getattr(view, PASSIVE_ATTR, False)  # a page's own polling is not a page


def init_two_factor_policy(app: Flask) -> None:
    """Send signed-in holders of REQUIRE_2FA_FOR_ROLES roles without a second factor to
    /account/security before any other page. Not even a hook when the list is empty."""
    roles = frozenset(app.extensions["hearth.settings"].require_2fa_for_roles)
    if not roles:
        return

    def require_second_factor() -> None:
        if "_user_id" not in session or not current_user.is_authenticated:
            return
        user = current_user._get_current_object()
        if user.two_factor_enabled or _exempt(request.endpoint or ""):
            return
        session_row = current_record()
        if session_row is not None and session_row.impersonator_id is not None:
            return  # an administrator viewing as this user (read-only) cannot set it up for them
        if not required_for(user, roles):
            return
        flash(_("Your role requires two-factor authentication. Set it up to continue."), "warning")
        abort(redirect(url_for("account.security")))

    add_browser_hooks(app, before=require_second_factor)
