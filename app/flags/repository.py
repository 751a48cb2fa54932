"""Queries over feature flags. Nothing here commits: the flag service's units of work do."""

from __future__ import annotations

from sqlalchemy import select

from app.core.repository import Repository
from app.flags.models import FeatureFlag
from app.users.models import User


class FeatureFlagRepository(Repository[FeatureFlag]):
    model = FeatureFlag

    def find_by_name(self, name: str) -> FeatureFlag | None:
        return self.session.scalar(select(FeatureFlag).where(FeatureFlag.name == name))

    def name_taken(self, name: str) -> bool:
        return self.session.scalar(select(FeatureFlag.id).where(FeatureFlag.name == name)) is not None

    def states(self) -> dict[str, bool]:
        """Every flag's name and whether it is on."""
        return {name: enabled for name, enabled in self.session.execute(select(FeatureFlag.name, FeatureFlag.enabled))}

    def with_editors(self) -> list[tuple[FeatureFlag, str | None]]:
        """Every flag by name, with the email of whoever last changed it: one query."""
        rows = self.session.execute(
            select(FeatureFlag, User.email)
            .outerjoin(User, User.id == FeatureFlag.updated_by_user_id)
            .order_by(FeatureFlag.name)
        ).all()
        return [(flag, email) for flag, email in rows]

    def editor_email(self, flag: FeatureFlag) -> str | None:
        """The email of whoever last changed `flag`, if that account still exists."""
        if flag.updated_by_user_id is None:
            return None
        editor = self.session.get(User, flag.updated_by_user_id)  # often the signed-in admin: no query
        return editor.email if editor else None
