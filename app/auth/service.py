"""Credential checks, lockout, token issue/rotation and revocation: shared by the browser
sign-in and the JSON API so both enforce the same rules."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from app.audit.service import record
from app.auth import lockout, second_factor
from app.auth.cache import forget_family
from app.auth.emailed_tokens import revoke_pending_tokens, token_hash
from app.auth.models import RefreshToken
from app.auth.refusals import committed_before_raising  # also imported from here (app.auth.accounts)
from app.auth.repository import RefreshTokenRepository, UserSessionRepository
from app.auth.session_records import revoke_all_sessions
from app.auth.tokens import issue_access_token
from app.core.database import UTCDateTime, utcnow
from app.core.hosts import app_path
from app.core.net import client_address
from app.core.templating import browser_and_system
from app.core.templating import user_agent as agent_in_words
from app.core.unit_of_work import unit_of_work
from app.errors import DomainError, Unauthorized
from app.i18n import DEFAULT_LOCALE, _, _l, force_locale
from app.notifications.service import notify
from app.users.models import User
from app.users.passwords import dummy_hash, hash_password, needs_rehash, refuse_when_busy, verify_password
from app.users.repository import UserRepository, normalise_email

users = UserRepository()
refresh_tokens = RefreshTokenRepository()
sessions = UserSessionRepository()

# Lazy: a form error shown in the reader's language (str() it for anything serialised).
GENERIC_FAILURE = _l("Invalid email or password.")
# "sync-tool/2.1" and "sync-tool/2.2" are one device for the new-sign-in notice.
VERSION_NUMBERS = re.compile(r"\d+(?:[._]\d+)*")


class InvalidCredentials(Unauthorized):
    """Wrong email or password, unknown account, locked or disabled: one message for all."""

    def __init__(self) -> None:
        super().__init__(str(GENERIC_FAILURE))


class InvalidRefreshToken(DomainError):
    status, title, slug = 401, "Unauthorized", "invalid-refresh-token"


class OtpRequired(Unauthorized):
    """The password is right and the account has two-factor: ask again with `otp`."""

    slug = "otp-required"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This account uses two-factor authentication: send the email and password again with "
                '"otp", a current code from the authenticator app or a recovery code.'
            )
        )


class InvalidOtp(Unauthorized):
    """A wrong or replayed `otp` (counted toward the lockout like a wrong password)."""

    slug = "invalid-otp"

    def __init__(self) -> None:
        super().__init__(_("The one-time code is not valid (or was already used). Send a current one."))


@dataclass(frozen=True)
class PasswordSignIn:
    """The answer to a correct password: the user, and whether a second factor must follow
    before they are signed in (`second_factor_pending`)."""

    user: User
    second_factor_pending: bool


def _settings():
    return current_app.extensions["hearth.settings"]


def _checked_credentials(email: str, password: str, channel: str) -> tuple[User, str]:
    """The user for these credentials and the client's lockout key, or `InvalidCredentials`.

    Writes nothing on success. A failure is recorded (and counted toward the lockout) in its
    own unit of work, committed before `InvalidCredentials` is raised: the count must persist
    although the sign-in fails. So this runs before, never inside, the sign-in's unit.
    """
    refuse_when_busy()
    user = users.find_by_email(normalise_email(email)) if email else None
    if user is None:
        verify_password(dummy_hash(), password)
        with committed_before_raising():
            record("login_failed", channel=channel, reason="unknown_email")
        raise InvalidCredentials()
    password_ok = verify_password(user.password_hash, password)
    client = lockout.client_key()
    if lockout.locked_until(user, client) is not None:
        with committed_before_raising():
            record("login_refused_locked", subject_id=user.id, channel=channel)
        raise InvalidCredentials()
    if not password_ok:
        with committed_before_raising():
            lockout.register_failure(user, channel, client)
        raise InvalidCredentials()
    if not user.is_active:
        with committed_before_raising():
            record("login_refused_disabled", subject_id=user.id, channel=channel)
        raise InvalidCredentials()
    return user, client


def _rehash_if_needed(user: User, password: str) -> None:
    """A rehash of a correct password if the hashing costs changed (caller's unit)."""
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)


def record_sign_in(
    user: User, channel: str, agent: str | None, method: str = "password", client: str | None = None
) -> None:
    """A successful sign-in, in the caller's unit of work: this client's failures forgotten,
    `last_login_at`, its audit row (`login_succeeded` with `method`: "password", "totp",
    "recovery_code" or "passkey"; the second factors after a password), and a notice if it
    came from a device the account has not signed in from before (`_notice_new_device`)."""
    with unit_of_work():
        _notice_new_device(user, agent or "")
        lockout.clear_client(user, client or lockout.client_key())
        user.last_login_at = utcnow()
        record("login_succeeded", actor_id=user.id, subject_id=user.id, channel=channel, method=method)


def _device_words(agent: str) -> str:
    """ "Firefox on Linux", always in English: the notice is stored in English and its template
    translated where it is read; the device's words stay as they are (a generic "%(browser)s on
    %(system)s" marked for `translate_stored` would also match unrelated stored sentences)."""
    with force_locale(DEFAULT_LOCALE):
        return agent_in_words(agent)


def device_of(agent: str) -> tuple[str | None, ...]:
    """What makes a User-Agent "the same device" for the new-sign-in notice: its browser and
    system ("Firefox", "Linux"), so a browser's monthly version bump is not a new device; for
    a client neither is known of (an API tool), its header without version numbers."""
    browser, system = browser_and_system(agent) if agent else (None, None)
    if browser or system:
        return browser, system
    return (VERSION_NUMBERS.sub("", agent).strip(),)


def _notice_new_device(user: User, agent: str) -> None:
    """`security.new_sign_in` when `agent` (the client's User-Agent) is a device none of the
    account's sessions and API sign-ins had (before this sign-in adds its own). An account with
    no record at all is signing in for the first time (e.g. right after sign-up): nothing to
    warn about."""
    agent = agent[:300]
    seen = sessions.agents_seen(user.id)
    if not seen or agent in seen or device_of(agent) in {device_of(known or "") for known in seen}:
        return
    notify(
        user,
        "security.new_sign_in",
        params={"device": _device_words(agent), "address": client_address()},
        link=app_path("account.index"),
    )


def authenticate(email: str, password: str, channel: str, user_agent: str | None = None) -> PasswordSignIn:
    """Check a password sign-in; `InvalidCredentials` if it fails.

    Unknown emails cost one argon2 verification too (against a dummy hash), and every
    failure answers the same message, so neither timing nor wording reveals accounts.
    Wrong passwords lock this client out of this account first (app.auth.lockout).
    A failure commits what it records before raising; a success commits in one unit of work.
    During a storm of sign-ins, `PasswordHashingBusy` (503) comes before any database work.

    An account with two-factor is not signed in yet (`second_factor_pending`): the password
    step is audited as `login_password_ok_pending_2fa` and its client's failures are kept
    (forgetting them here would let a stolen password reset the count of guessed codes);
    `record_sign_in` follows once the second factor is right (app.auth.sign_in_flow).
    """
    user, client = _checked_credentials(email, password, channel)
    if user.two_factor_enabled:
        with unit_of_work():
            _rehash_if_needed(user, password)
            record("login_password_ok_pending_2fa", actor_id=user.id, subject_id=user.id, channel=channel)
        return PasswordSignIn(user, second_factor_pending=True)
    with unit_of_work():
        _rehash_if_needed(user, password)
        record_sign_in(user, channel, user_agent, client=client)
    return PasswordSignIn(user, second_factor_pending=False)


def sign_out_everywhere(user: User, reason: str, actor_id: int | None = None) -> None:
    """Kill every session cookie and access token (epoch bump) and every refresh token, in the
    caller's unit of work. `actor_id` is who did it when it is not the user themself (an admin)."""
    with unit_of_work():
        user.session_epoch += 1
        revoke_all_refresh_tokens(user.id)
        revoke_all_sessions(user.id)
        # A link in an old email (verify, reset, unlock) must not outlive the sign-out.
        revoke_pending_tokens(user.id)
        record("signed_out_everywhere", actor_id=actor_id or user.id, subject_id=user.id, reason=reason)


# API tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type, not a secret)


def _new_refresh(user: User, family_id: str, user_agent: str | None, authenticated_at: datetime | None) -> str:
    raw = secrets.token_urlsafe(32)  # 256 bits
    refresh_tokens.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=token_hash(raw),
            user_agent=(user_agent or "")[:300],
            expires_at=utcnow() + timedelta(days=_settings().refresh_token_days),
            authenticated_at=authenticated_at,
        )
    )
    return raw


def _pair(user: User, family_id: str, user_agent: str | None, authenticated_at: datetime | None) -> TokenPair:
    """Both tokens of one sign-in; `authenticated_at` (the sign-in's last proof of identity)
    is carried by the refresh token through rotations and by the access token as `auth_time`."""
    auth_time = int(authenticated_at.timestamp()) if authenticated_at is not None else None
    access, expires_in = issue_access_token(user, family_id, auth_time)
    refresh = _new_refresh(user, family_id, user_agent, authenticated_at)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=expires_in)


def issue_tokens(user: User, user_agent: str | None) -> TokenPair:
    """A new token family for a fresh login (authenticated now), in the caller's unit of work."""
    with unit_of_work():
        pair = _pair(user, str(uuid.uuid4()), user_agent, utcnow())
        record("api_tokens_issued", actor_id=user.id, subject_id=user.id)
    return pair


def sign_in_for_tokens(email: str, password: str, user_agent: str | None, otp: str | None = None) -> TokenPair:
    """API sign-in: the credentials checked, then a new token family, in one unit of work (the
    user's `last_login_at`, the refresh token and both audit rows); a failure raises
    `InvalidCredentials` after committing what it records (`_checked_credentials`).

    An account with two-factor also needs `otp` (a current authenticator code or an unused
    recovery code): missing, `OtpRequired`; wrong, `InvalidOtp` (counted toward the lockout).
    A holder of a REQUIRE_2FA_FOR_ROLES role without a second factor gets
    `TwoFactorSetupRequired` (403): they set one up in the browser first."""
    user, client = _checked_credentials(email, password, channel="api")
    second_factor.refuse_tokens_without_second_factor(user)
    method = "password"
    if user.two_factor_enabled:
        if not (otp or "").strip():
            with committed_before_raising():
                _rehash_if_needed(user, password)
                record("login_password_ok_pending_2fa", actor_id=user.id, subject_id=user.id, channel="api")
            raise OtpRequired()
        try:
            method = second_factor.verify_code(user, otp, "api")
        except second_factor.InvalidSecondFactor:
            raise InvalidOtp() from None
    with unit_of_work():
        _rehash_if_needed(user, password)
        record_sign_in(user, "api", user_agent, method=method, client=client)
        return issue_tokens(user, user_agent)


def rotate_refresh_token(raw: str, user_agent: str | None) -> TokenPair:
    """Exchange a refresh token for a new pair; the presented one is revoked.

    A token that was already rotated or revoked means it leaked (or the client is replaying):
    the whole family is revoked, committed before the call fails.
    """
    token = refresh_tokens.find_by_hash(token_hash(raw))
    now = utcnow()
    if token is None:
        raise InvalidRefreshToken(_("The refresh token is not valid."))
    if token.revoked_at is not None:
        with committed_before_raising():
            revoke_family(token.family_id)
            record("refresh_token_reused", subject_id=token.user_id, family=token.family_id)
        raise InvalidRefreshToken(_("The refresh token was already used; every token of this sign-in is revoked."))
    user = users.get(token.user_id)
    if token.expires_at <= now or user is None or not user.is_active:
        raise InvalidRefreshToken(_("The refresh token has expired or the account is disabled."))
    # Compare-and-set: two concurrent refreshes with the same token cannot both win. The loser
    # is a replay: its unit revokes the whole family instead, and commits that before raising.
    with committed_before_raising():
        won = refresh_tokens.claim(token.id, now)
        if won:
            pair = _pair(user, token.family_id, user_agent, token.authenticated_at)
        else:
            revoke_family(token.family_id)
    if not won:
        raise InvalidRefreshToken(_("The refresh token was already used; every token of this sign-in is revoked."))
    return pair


def revoke_family(family_id: str, user_id: int | None = None) -> int:
    """Revoke one sign-in (of `user_id`, when given) in the caller's unit of work: every refresh
    token of the family and, once committed, its access tokens too (app.auth.cache). Returns
    how many were still live."""
    with unit_of_work():
        revoked = refresh_tokens.revoke_family(family_id, utcnow(), user_id=user_id)
        forget_family(family_id)
    return revoked


def revoke_all_refresh_tokens(user_id: int) -> None:
    """Every API sign-in of the user, refresh and access tokens alike."""
    with unit_of_work():
        for family_id in refresh_tokens.revoke_all_of(user_id, utcnow()):
            forget_family(family_id)


def logout_refresh_token(raw: str) -> None:
    """Revoke the family of the presented refresh token (API logout); unknown tokens are ignored."""
    with unit_of_work():
        token = refresh_tokens.find_by_hash(token_hash(raw))
        if token is not None:
            revoke_family(token.family_id)
            record("api_logout", actor_id=token.user_id, subject_id=token.user_id)


# API sign-ins on the account page ----------------------------------------------------------


@dataclass(frozen=True)
class ApiSignIn:
    family_id: str
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime | None


def api_sign_ins(user_id: int) -> list[ApiSignIn]:
    """The user's live API sign-ins (refresh-token families), newest first."""
    as_utc = UTCDateTime().process_result_value
    return [
        ApiSignIn(family, agent, as_utc(created, None), as_utc(used, None))
        for family, agent, created, used in refresh_tokens.live_sign_ins(user_id, utcnow())
    ]


def revoke_api_sign_in(user_id: int, family_id: str) -> bool:
    """Revoke one of the user's API sign-ins: its refresh tokens and its access tokens."""
    with unit_of_work():
        revoked = revoke_family(family_id, user_id=user_id)
        if revoked:
            record("api_sign_in_revoked", actor_id=user_id, subject_id=user_id)
    return bool(revoked)
