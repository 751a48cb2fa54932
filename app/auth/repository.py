"""Queries over the sign-in tables (docs/architecture.md §7): browser sessions, remember-me and
refresh tokens, emailed tokens and wrong-password counts.

One `Repository` per model, with the named finders and the compare-and-set updates the auth
services need. Nothing here commits: services call these inside their unit of work
(app.core.unit_of_work).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Row, delete, func, select, update
from sqlalchemy.orm import lazyload

from app.auth.models import AccountToken, LoginFailures, RefreshToken, RememberToken, UserSession
from app.core.repository import Repository
from app.users.models import User

# One row: the session record and its user (roles only if a view reads them, as
# app.users.service.load_principal does). Built once: it runs on every browser request.
_SESSION_WITH_USER = select(UserSession, User).join(User, User.id == UserSession.user_id).options(lazyload(User.roles))


class UserSessionRepository(Repository[UserSession]):
    """`user_sessions`: one row per signed-in browser."""

    model = UserSession

    def with_user(self, sid: str) -> Row[tuple[UserSession, User]] | None:
        """The session record `sid` and its user, in one statement."""
        return self.session.execute(_SESSION_WITH_USER.where(UserSession.id == sid)).first()

    def live_of(self, user_id: int, now: datetime) -> list[UserSession]:
        """The user's unrevoked, unexpired sessions, most recently used first. An administrator
        viewing as the user is not one of them: that browser and address are the
        administrator's (the user learns of it from their activity and a notification)."""
        return list(
            self.session.scalars(
                select(UserSession)
                .where(
                    UserSession.user_id == user_id,
                    UserSession.revoked_at.is_(None),
                    UserSession.expires_at > now,
                    UserSession.impersonator_id.is_(None),
                )
                .order_by(UserSession.last_seen_at.desc())
            )
        )

    def agents_seen(self, user_id: int) -> set[str | None]:
        """Every User-Agent the user has signed in with, as far as the records still tell: their
        browser sessions and API sign-ins, live or ended (one statement). Empty: never signed in.
        An administrator's browser viewing as the user is not theirs: it must not make the same
        kind of browser a known device when someone signs in with it."""
        statement = (
            select(UserSession.user_agent)
            .where(UserSession.user_id == user_id, UserSession.impersonator_id.is_(None))
            .union(select(RefreshToken.user_agent).where(RefreshToken.user_id == user_id))
        )
        return set(self.session.scalars(statement))

    def live_impersonations(
        self, *, user_id: int | None = None, lapsed_by: datetime | None = None
    ) -> list[UserSession]:
        """Unrevoked impersonation records (administrators viewing as someone): of `user_id`
        when given, and only those whose time box ended by `lapsed_by` when given."""
        statement = select(UserSession).where(
            UserSession.impersonator_id.is_not(None), UserSession.revoked_at.is_(None)
        )
        if user_id is not None:
            statement = statement.where(UserSession.user_id == user_id)
        if lapsed_by is not None:
            statement = statement.where(UserSession.expires_at <= lapsed_by)
        return list(self.session.scalars(statement))

    def end(self, sid: str, now: datetime) -> None:
        """Mark the session `sid` revoked (sign-out)."""
        self.session.execute(update(UserSession).where(UserSession.id == sid).values(revoked_at=now))

    def revoke_live(self, sid: str, now: datetime, user_id: int | None = None) -> bool:
        """Revoke the session `sid` unless it already was; whether it was live. With `user_id`,
        only one of that user's own sessions (never an administrator's viewing as them: that
        ends through app.auth.impersonation.stop, which records it)."""
        statement = update(UserSession).where(UserSession.id == sid, UserSession.revoked_at.is_(None))
        if user_id is not None:
            statement = statement.where(UserSession.user_id == user_id, UserSession.impersonator_id.is_(None))
        return self.session.execute(statement.values(revoked_at=now)).rowcount == 1

    def revoke_all_of(self, user_id: int, now: datetime, keep: str | None = None) -> None:
        """Revoke every live session of the user, but `keep` (a session id) when given."""
        statement = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        if keep is not None:
            statement = statement.where(UserSession.id != keep)
        self.session.execute(statement.values(revoked_at=now))


class RememberTokenRepository(Repository[RememberToken]):
    """`remember_tokens`: "keep me signed in", stored as SHA-256 digests."""

    model = RememberToken

    def find_by_hash(self, digest: str) -> RememberToken | None:
        return self.session.scalar(select(RememberToken).where(RememberToken.token_hash == digest))

    def find_rotated_from(self, digest: str) -> RememberToken | None:
        """The token whose previous value was `digest` (it was rotated away from it)."""
        return self.session.scalar(select(RememberToken).where(RememberToken.previous_hash == digest))

    def rotate(self, token_id: int, digest: str, fresh_digest: str, session_id: str, now: datetime) -> bool:
        """Compare-and-set: replace the live token `digest` by `fresh_digest`, bound to
        `session_id`. Of two requests racing with one token, only one gets True."""
        return (
            self.session.execute(
                update(RememberToken)
                .where(
                    RememberToken.id == token_id,
                    RememberToken.token_hash == digest,
                    RememberToken.revoked_at.is_(None),
                )
                .values(token_hash=fresh_digest, previous_hash=digest, rotated_at=now, session_id=session_id)
            ).rowcount
            == 1
        )

    def revoke_of_session(self, sid: str, now: datetime) -> None:
        self._revoke(RememberToken.session_id == sid, now)

    def revoke_all_of(self, user_id: int, now: datetime, keep_session: str | None = None) -> None:
        """Revoke every remember-me token of the user, but those of session `keep_session`."""
        condition = RememberToken.user_id == user_id
        if keep_session is not None:
            condition = condition & (RememberToken.session_id != keep_session)
        self._revoke(condition, now)

    def _revoke(self, condition: ColumnElement[bool], now: datetime) -> None:
        self.session.execute(
            update(RememberToken).where(condition, RememberToken.revoked_at.is_(None)).values(revoked_at=now)
        )


class RefreshTokenRepository(Repository[RefreshToken]):
    """`refresh_tokens`: API sign-ins, one family per sign-in, stored as SHA-256 digests."""

    model = RefreshToken

    def find_by_hash(self, digest: str) -> RefreshToken | None:
        return self.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))

    def claim(self, token_id: int, now: datetime) -> bool:
        """Compare-and-set: revoke the live token `token_id` as used. Of two concurrent
        refreshes with one token, only one gets True."""
        return (
            self.session.execute(
                update(RefreshToken)
                .where(RefreshToken.id == token_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now, last_used_at=now)
            ).rowcount
            == 1
        )

    def revoke_family(self, family_id: str, now: datetime, user_id: int | None = None) -> int:
        """Revoke every live token of the family (of `user_id`, when given); how many were live."""
        statement = update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        if user_id is not None:
            statement = statement.where(RefreshToken.user_id == user_id)
        return self.session.execute(statement.values(revoked_at=now)).rowcount

    def revoke_all_of(self, user_id: int, now: datetime, keep_family: str | None = None) -> list[str]:
        """Revoke every live token of the user (but family `keep_family`); the families that had one."""
        live = (RefreshToken.user_id == user_id) & RefreshToken.revoked_at.is_(None)
        if keep_family is not None:
            live = live & (RefreshToken.family_id != keep_family)
        families = list(self.session.scalars(select(RefreshToken.family_id).where(live).distinct()))
        self.session.execute(update(RefreshToken).where(live).values(revoked_at=now))
        return families

    def live_family_owner(self, family_id: str) -> int | None:
        """The user of the family while one member is unrevoked (else None)."""
        return self.session.scalar(
            select(RefreshToken.user_id)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .limit(1)
        )

    def live_sign_ins(self, user_id: int, now: datetime) -> list[Row]:
        """One row per live family of the user, newest first: (family_id, user_agent,
        created_at, last_used_at), the times as the database returns aggregates."""
        return list(
            self.session.execute(
                select(
                    RefreshToken.family_id,
                    func.max(RefreshToken.user_agent),
                    func.min(RefreshToken.created_at),
                    func.max(RefreshToken.last_used_at),
                )
                .where(
                    RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > now
                )
                .group_by(RefreshToken.family_id)
                .order_by(func.min(RefreshToken.created_at).desc())
            ).all()
        )


class AccountTokenRepository(Repository[AccountToken]):
    """`account_tokens`: single-use tokens sent by email, stored as SHA-256 digests."""

    model = AccountToken

    def find(self, digest: str, purpose: str) -> AccountToken | None:
        return self.session.scalar(
            select(AccountToken).where(AccountToken.token_hash == digest, AccountToken.purpose == purpose)
        )

    def mark_used(self, token_id: int, now: datetime) -> bool:
        """Compare-and-set: the token is used once; whether this call used it."""
        return (
            self.session.execute(
                update(AccountToken)
                .where(AccountToken.id == token_id, AccountToken.used_at.is_(None))
                .values(used_at=now)
            ).rowcount
            == 1
        )

    def end_pending(
        self, user_id: int, now: datetime, purposes: tuple[str, ...] | None = None, sparing: tuple[str, ...] = ()
    ) -> None:
        """Mark the user's unused tokens used: those of `purposes`, or all but `sparing`."""
        statement = update(AccountToken).where(AccountToken.user_id == user_id, AccountToken.used_at.is_(None))
        if purposes is None:
            statement = statement.where(AccountToken.purpose.not_in(sparing))
        else:
            statement = statement.where(AccountToken.purpose.in_(purposes))
        self.session.execute(statement.values(used_at=now))


class LoginFailuresRepository(Repository[LoginFailures]):
    """`login_failures`: wrong passwords per (account, client)."""

    model = LoginFailures

    def of(self, user_id: int, client: str) -> LoginFailures | None:
        return self.get((user_id, client))

    def forget_client(self, user_id: int, client: str) -> None:
        self.session.execute(
            delete(LoginFailures).where(LoginFailures.user_id == user_id, LoginFailures.client == client)
        )

    def forget_account(self, user_id: int) -> None:
        self.session.execute(delete(LoginFailures).where(LoginFailures.user_id == user_id))

    def forget_older_than(self, cutoff: datetime) -> int:
        """Delete the counts nobody added to since `cutoff`; how many."""
        return self.session.execute(delete(LoginFailures).where(LoginFailures.last_failed_at < cutoff)).rowcount or 0
