"""The `users` table."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.database import UTCDateTime, utcnow
from app.extensions import db
from app.rbac.models import Role, user_roles


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored normalised (lower-case); uniqueness is therefore case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(120), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active_account: Mapped[bool] = mapped_column("is_active", Boolean, default=True, index=True)
    # Bumped by logout-everywhere, password change and disabling: every session cookie and
    # access token minted before then stops working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_login_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The account-wide lock (a distributed attack); per-client locks are `login_failures`.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lockout_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A confirmed authenticator app or at least one passkey (app.auth.second_factor keeps it
    # in step): read on every sign-in and by the REQUIRE_2FA_FOR_ROLES check without a join.
    two_factor_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The language the user reads the site in ("en", "de": app.i18n.LANGUAGE_NAMES); None
    # follows the browser's Accept-Language.
    locale: Mapped[str | None] = mapped_column(String(16))
    avatar_upload_id: Mapped[str | None] = mapped_column(ForeignKey("uploads.id", ondelete="SET NULL", use_alter=True))
    # Soft delete: the row stays for the audit trail; the account can no longer sign in.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="selectin")

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        return self.is_active_account and self.deleted_at is None

    @property
    def status(self) -> str:
        if self.deleted_at is not None:
            return "deleted"
        return "active" if self.is_active_account else "disabled"

    def get_id(self) -> str:
        """The session's user id carries the epoch, so a bumped epoch kills copied cookies."""
        return f"{self.id}:{self.session_epoch}"

    @property
    def role_names(self) -> list[str]:
        return sorted(role.name for role in self.roles)

    def __repr__(self) -> str:
        return f"<User {self.id}>"
