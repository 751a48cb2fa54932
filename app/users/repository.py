"""Queries over users (docs/architecture.md §7): `UserRepository`'s named finders, the
statement behind the user lists, and the role lookups the user pages show. Nothing here
commits: services call these inside their unit of work (app.core.unit_of_work)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy import Row, Select, case, func, or_, select
from sqlalchemy.orm import lazyload, selectinload

from app.core.repository import Repository
from app.rbac.catalog import ADMIN_ROLE
from app.rbac.models import Role, user_roles
from app.users.models import User

# Users holding the admin role (joined through user_roles).
_ADMINS = (
    select(User)
    .join(user_roles, user_roles.c.user_id == User.id)
    .join(Role, Role.id == user_roles.c.role_id)
    .where(Role.name == ADMIN_ROLE)
)
_STATUS = case(
    (User.deleted_at.is_not(None), "deleted"), (User.is_active_account.is_(False), "disabled"), else_="active"
)
ROLES = select(Role).order_by(Role.name)
ROLE_NAMES = select(Role.name).order_by(Role.name)


class UserRepository(Repository[User]):
    model = User

    def find_by_email(self, email: str) -> User | None:
        """One query: the roles load only if the caller reads them (sign-in does not)."""
        statement = select(User).where(User.email == normalise_email(email)).options(lazyload(User.roles)).limit(1)
        return self.session.scalars(statement).first()

    def get_principal(self, user_id: int) -> User | None:
        """The user by id in one query: roles load only if the caller reads them."""
        return self.session.get(User, user_id, options=[lazyload(User.roles)])

    def sign_in_state(self, user_id: int) -> Row | None:
        """(is_active_account, deleted_at, session_epoch) of the user, without loading the row."""
        return self.session.execute(
            select(User.is_active_account, User.deleted_at, User.session_epoch).where(User.id == user_id)
        ).first()

    def admins(self) -> list[User]:
        """Every holder of the admin role, oldest account first."""
        return list(self.session.scalars(_ADMINS.order_by(User.id)))

    def active_admin_ids(self) -> set[int]:
        """Holders of the admin role who are active and not deleted."""
        return set(
            self.session.scalars(
                _ADMINS.with_only_columns(User.id).where(User.is_active_account.is_(True), User.deleted_at.is_(None))
            )
        )

    def live_by_ids(self, ids: Iterable[int]) -> list[User]:
        """The users of `ids` that are not deleted, by id."""
        return list(
            self.session.scalars(
                select(User).where(User.id.in_(list(ids)), User.deleted_at.is_(None)).order_by(User.id)
            )
        )

    def stream(self, statement: Select, batch: int) -> Iterator[Sequence[User]]:
        """The users of `statement` in batches of `batch`, from a server-side cursor."""
        result = self.session.execute(statement.execution_options(yield_per=batch))
        return result.scalars().partitions()

    def count_by_status(self) -> dict[str, int]:
        """{status: accounts} for the statuses that have any (active, disabled, deleted)."""
        return dict(self.session.execute(select(_STATUS, func.count()).group_by(_STATUS)).all())

    def count_unverified(self) -> int:
        """Accounts, not deleted, whose email address is unverified."""
        return (
            self.session.scalar(select(func.count()).where(User.email_verified_at.is_(None), User.deleted_at.is_(None)))
            or 0
        )

    def count_created_since(self, since: datetime) -> int:
        return self.session.scalar(select(func.count()).where(User.created_at >= since)) or 0

    def roles(self) -> list[Role]:
        """Every role, by name (their permissions come with them: `Role.permissions` is selectin)."""
        return list(self.session.scalars(ROLES))

    def role_names(self) -> list[str]:
        return list(self.session.scalars(ROLE_NAMES))


def normalise_email(email: str) -> str:
    return email.strip().lower()


SORTABLE = {"email", "display_name", "created_at", "last_login_at"}


def user_list_statement(
    q: str | None = None,
    role: str | None = None,
    status: str | None = None,
    sort: str = "email",
    verified: bool | None = None,
) -> Select:
    """Users matching the filters, in `sort` order (`-field` for descending). Roles come with
    one extra query per page (selectin), never one per user."""
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
