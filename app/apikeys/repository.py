"""Queries over personal API keys. Nothing here commits: services call these inside their
unit of work (app.core.unit_of_work)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, func, or_, select, text, update

from app.apikeys.models import ApiKey
from app.core.repository import Repository
from app.users.models import User


class ApiKeyRepository(Repository[ApiKey]):
    model = ApiKey

    def credential(self, prefix: str) -> Row | None:
        """What authenticating a presented key needs, in one indexed query (the unique prefix,
        joined to its owner): (id, user_id, secret_hash, scopes, expires_at, revoked_at,
        last_used_at, owner active, owner deleted_at)."""
        return self.session.execute(
            select(
                ApiKey.id,
                ApiKey.user_id,
                ApiKey.secret_hash,
                ApiKey.scopes,
                ApiKey.expires_at,
                ApiKey.revoked_at,
                ApiKey.last_used_at,
                User.is_active_account,
                User.deleted_at,
            )
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.prefix == prefix)
        ).first()

    def live_for(self, user_id: int, now: datetime) -> list[ApiKey]:
        """The user's keys that are neither revoked nor expired, newest first."""
        return list(
            self.session.scalars(
                select(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None), ApiKey.expires_at > now)
                .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
            )
        )

    def lock_owner(self, user_id: int) -> None:
        """Hold the owner's row until the unit of work ends, so two creations at once cannot
        both pass the per-user limit. PostgreSQL locks the row (FOR UPDATE); SQLite has no row
        locks and opens no transaction for a SELECT, so a write that changes nothing takes the
        database's write lock now (as app.exports.repository does)."""
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(text("UPDATE users SET id = id WHERE id = :id"), {"id": user_id})
        self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    def count_live(self, user_id: int, now: datetime) -> int:
        """How many of the user's keys are neither revoked nor expired."""
        return self.session.scalar(
            select(func.count(ApiKey.id)).where(
                ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None), ApiKey.expires_at > now
            )
        )

    def prefix_taken(self, prefix: str) -> bool:
        return self.session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix).limit(1)) is not None

    def touch(self, key_id: int, now: datetime, ip: str | None, not_since: datetime) -> int:
        """Record a use, unless one was recorded after `not_since` (compare-and-set: of the
        instances that see a key at once, one writes); the rows changed (0 or 1)."""
        return self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < not_since))
            .values(last_used_at=now, last_used_ip=ip)
            .execution_options(synchronize_session=False)
        ).rowcount
