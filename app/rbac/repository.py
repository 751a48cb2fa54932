"""Queries over roles, permissions and grants. Nothing here commits: the rbac services' units
of work do (app.core.unit_of_work)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select

from app.core.repository import Repository
from app.rbac.models import Permission, Role, role_permissions, user_roles
from app.users.models import User


class PermissionRepository(Repository[Permission]):
    model = Permission

    def all(self) -> list[Permission]:
        return list(self.session.scalars(select(Permission)))

    def named(self, names: Iterable[str]) -> list[Permission]:
        return list(self.session.scalars(select(Permission).where(Permission.name.in_(list(names)))))

    def names_held_by(self, user_id: int) -> frozenset[str]:
        """Every permission the user holds through any of their roles: one query."""
        return frozenset(
            self.session.scalars(
                select(Permission.name)
                .join(role_permissions, role_permissions.c.permission_id == Permission.id)
                .join(user_roles, user_roles.c.role_id == role_permissions.c.role_id)
                .where(user_roles.c.user_id == user_id)
            )
        )


class RoleRepository(Repository[Role]):
    model = Role

    def all(self) -> list[Role]:
        """Every role, by name."""
        return list(self.session.scalars(select(Role).order_by(Role.name)))

    def find_by_name(self, name: str) -> Role | None:
        return self.session.scalar(select(Role).where(Role.name == name))

    def name_taken(self, name: str) -> bool:
        return self.session.scalar(select(Role.id).where(Role.name == name)) is not None

    def names_held_by(self, user_id: int) -> list[str]:
        return list(
            self.session.scalars(
                select(Role.name)
                .join(user_roles, user_roles.c.role_id == Role.id)
                .where(user_roles.c.user_id == user_id)
                .order_by(Role.name)
            )
        )

    def member_count(self, role_id: int) -> int:
        """Accounts holding the role, deleted ones left out."""
        return (
            self.session.scalar(
                select(func.count())
                .select_from(user_roles)
                .join(User, User.id == user_roles.c.user_id)
                .where(user_roles.c.role_id == role_id, User.deleted_at.is_(None))
            )
            or 0
        )

    def member_counts(self) -> dict[int, int]:
        """Accounts holding each role (deleted ones left out), by role id: one query."""
        return dict(
            self.session.execute(
                select(user_roles.c.role_id, func.count())
                .join(User, User.id == user_roles.c.user_id)
                .where(User.deleted_at.is_(None))
                .group_by(user_roles.c.role_id)
            ).all()
        )

    def remove_grants(self, role_id: int) -> None:
        """Take the role from every account holding it (deleted accounts included)."""
        self.session.execute(delete(user_roles).where(user_roles.c.role_id == role_id))
