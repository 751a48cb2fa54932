"""Credential checks, lockout, token issue/rotation and revocation: shared by the browser
sign-in and the JSON API so both enforce the same rules."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from app.audit.service import record
from app.auth import lockout
from app.auth.cache import forget_family
from app.auth.emailed_tokens import revoke_pending_tokens, token_hash
from app.auth.models import RefreshToken
from app.auth.session_records import revoke_all_sessions
from app.auth.tokens import issue_access_token
from app.core.database import utcnow
from app.errors import DomainError, Unauthorized
from app.extensions import db
from app.users.models import User
from app.users.passwords import dummy_hash, hash_password, needs_rehash, refuse_when_busy, verify_password
from app.users.repository import UserRepository, normalise_email

users = UserRepository()

GENERIC_FAILURE = "Invalid email or password."


class InvalidCredentials(Unauthorized):
    """Wrong email or password, unknown account, locked or disabled: one message for all."""

    def __init__(self) -> None:
        super().__init__(GENERIC_FAILURE)


class InvalidRefreshToken(DomainError):
    status, title, slug = 401, "Unauthorized", "invalid-refresh-token"


def _settings():
    return current_app.extensions["hearth.settings"]


def authenticate(email: str, password: str, channel: str, commit: bool = True) -> User:
    """The user for these credentials, or `InvalidCredentials`.

    Unknown emails cost one argon2 verification too (against a dummy hash), and every
    failure answers the same message, so neither timing nor wording reveals accounts.
    Wrong passwords lock this client out of this account first (app.auth.lockout).
    A failure always commits what it records; `commit=False` leaves a success (last_login_at,
    its audit row) to the caller's commit, so the sign-in and what it issues commit together.
    During a storm of sign-ins, `PasswordHashingBusy` (503) comes before any database work.
    """
    refuse_when_busy()
    user = users.find_by_email(normalise_email(email)) if email else None
    if user is None:
        verify_password(dummy_hash(), password)
        record("login_failed", channel=channel, reason="unknown_email")
        db.session.commit()
        raise InvalidCredentials()
    password_ok = verify_password(user.password_hash, password)
    client = lockout.client_key()
    if lockout.locked_until(user, client) is not None:
        record("login_refused_locked", subject_id=user.id, channel=channel)
        db.session.commit()
        raise InvalidCredentials()
    if not password_ok:
        lockout.register_failure(user, channel, client)
        db.session.commit()
        raise InvalidCredentials()
    if not user.is_active:
        record("login_refused_disabled", subject_id=user.id, channel=channel)
        db.session.commit()
        raise InvalidCredentials()
    lockout.clear_client(user, client)
    user.last_login_at = utcnow()
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record("login_succeeded", actor_id=user.id, subject_id=user.id, channel=channel)
    if commit:
        db.session.commit()
    return user


def sign_out_everywhere(user: User, reason: str, commit: bool = True, actor_id: int | None = None) -> None:
    """Kill every session cookie and access token (epoch bump) and every refresh token.
    `actor_id` is who did it when it is not the user themself (an admin)."""
    user.session_epoch += 1
    revoke_all_refresh_tokens(user.id)
    revoke_all_sessions(user.id)
    # A link in an old email (verify, reset, unlock) must not outlive the sign-out.
    revoke_pending_tokens(user.id)
    record("signed_out_everywhere", actor_id=actor_id or user.id, subject_id=user.id, reason=reason)
    if commit:
        db.session.commit()


# API tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type, not a secret)


def _new_refresh(user: User, family_id: str, user_agent: str | None) -> str:
    raw = secrets.token_urlsafe(32)  # 256 bits
    db.session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=token_hash(raw),
            user_agent=(user_agent or "")[:300],
            expires_at=utcnow() + timedelta(days=_settings().refresh_token_days),
        )
    )
    return raw


def _pair(user: User, family_id: str, user_agent: str | None) -> TokenPair:
    access, expires_in = issue_access_token(user, family_id)
    refresh = _new_refresh(user, family_id, user_agent)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=expires_in)


def issue_tokens(user: User, user_agent: str | None) -> TokenPair:
    """A new token family for a fresh login."""
    pair = _pair(user, str(uuid.uuid4()), user_agent)
    record("api_tokens_issued", actor_id=user.id, subject_id=user.id)
    db.session.commit()
    return pair


def sign_in_for_tokens(email: str, password: str, user_agent: str | None) -> TokenPair:
    """API sign-in: the credentials checked, then a new token family, in one commit (the user's
    `last_login_at`, the refresh token and both audit rows); a failure raises `InvalidCredentials`."""
    user = authenticate(email, password, channel="api", commit=False)
    return issue_tokens(user, user_agent)


def rotate_refresh_token(raw: str, user_agent: str | None) -> TokenPair:
    """Exchange a refresh token for a new pair; the presented one is revoked.

    A token that was already rotated or revoked means it leaked (or the client is replaying):
    the whole family is revoked and the call fails.
    """
    token = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash(raw)))
    now = utcnow()
    if token is None:
        raise InvalidRefreshToken("The refresh token is not valid.")
    if token.revoked_at is not None:
        revoke_family(token.family_id)
        record("refresh_token_reused", subject_id=token.user_id, family=token.family_id)
        db.session.commit()
        raise InvalidRefreshToken("The refresh token was already used; every token of this sign-in is revoked.")
    user = db.session.get(User, token.user_id)
    if token.expires_at <= now or user is None or not user.is_active:
        raise InvalidRefreshToken("The refresh token has expired or the account is disabled.")
    # Compare-and-set: two concurrent refreshes with the same token cannot both win.
    claimed = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, last_used_at=now)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        revoke_family(token.family_id)
        db.session.commit()
        raise InvalidRefreshToken("The refresh token was already used; every token of this sign-in is revoked.")
    pair = _pair(user, token.family_id, user_agent)
    db.session.commit()
    return pair


def revoke_family(family_id: str, user_id: int | None = None) -> int:
    """Revoke one sign-in (of `user_id`, when given): every refresh token of the family and,
    once committed, its access tokens too (app.auth.cache). Returns how many were still live."""
    statement = update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
    if user_id is not None:
        statement = statement.where(RefreshToken.user_id == user_id)
    revoked = db.session.execute(statement.values(revoked_at=utcnow())).rowcount
    forget_family(family_id)
    return revoked


def revoke_all_refresh_tokens(user_id: int) -> None:
    """Every API sign-in of the user, refresh and access tokens alike."""
    live = (RefreshToken.user_id == user_id) & RefreshToken.revoked_at.is_(None)
    families = db.session.scalars(select(RefreshToken.family_id).where(live).distinct()).all()
    db.session.execute(update(RefreshToken).where(live).values(revoked_at=utcnow()))
    for family_id in families:
        forget_family(family_id)


def logout_refresh_token(raw: str) -> None:
    """Revoke the family of the presented refresh token (API logout); unknown tokens are ignored."""
    token = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash(raw)))
    if token is not None:
        revoke_family(token.family_id)
        record("api_logout", actor_id=token.user_id, subject_id=token.user_id)
    db.session.commit()
