"""Queries over users."""

from __future__ import annotations

from app.core.repository import Repository
from app.rbac.models import Role, user_roles
from app.users.models import User


class UserRepository(Repository[User]):
    model = User

    def find_by_email(self, email: str) -> User | None:
        """One query: the roles load only if the caller reads them (sign-in does not)."""
        from sqlalchemy import select
        from sqlalchemy.orm import lazyload

        statement = select(User).where(User.email == normalise_email(email)).options(lazyload(User.roles)).limit(1)
        return self.session.scalars(statement).first()


def normalise_email(email: str) -> str:
    return email.strip().lower()


SORTABLE = {"email", "display_name", "created_at", "last_login_at"}


def user_list_statement(
    q: str | None = None,
    role: str | None = None,
    status: str | None = None,
    sort: str = "email",
    verified: bool | None = None,
):
    """Users matching the filters, in `sort` order (`-field` for descending). Roles come with
    one extra query per page (selectin), never one per user."""
    from sqlalchemy import or_, select
    from sqlalchemy.orm import lazyload, selectinload

    # Roles come with the page (one query); their permissions only if something reads them.
    statement = select(User).options(selectinload(User.roles).options(lazyload(Role.permissions)))
    if q:
        pattern = f"%{q.lower()}%"
        statement = statement.where(or_(User.email.like(pattern), User.display_name.ilike(pattern)))
    if role:
        statement = statement.where(
            User.id.in_(
                select(user_roles.c.user_id).join(Role, Role.id == user_roles.c.role_id).where(Role.name == role)
            )
        )
    if verified is not None:
        statement = statement.where(
            User.email_verified_at.is_not(None) if verified else User.email_verified_at.is_(None)
        )
    if status == "active":
        statement = statement.where(User.deleted_at.is_(None), User.is_active_account.is_(True))
    elif status == "disabled":
        statement = statement.where(User.deleted_at.is_(None), User.is_active_account.is_(False))
    elif status == "deleted":
        statement = statement.where(User.deleted_at.is_not(None))
    elif status != "all":
        statement = statement.where(User.deleted_at.is_(None))
    column = getattr(User, sort.lstrip("-"))
    return statement.order_by(column.desc() if sort.startswith("-") else column.asc(), User.id)
