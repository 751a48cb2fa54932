"""Factories for accounts that skip the sign-up flow: the demo seed (`flask demo seed`) and the
tests' `make_user` fixture build their users here, so both make the same rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.extensions import db
from app.rbac.models import Role
from app.rbac.service import role_named
from app.users.models import User


def new_user(
    email: str,
    password_hash: str,
    *,
    display_name: str | None = None,
    roles: Iterable[str | Role] = ("user",),
    **fields: Any,
) -> User:
    """A user holding `roles` (names, or Role rows not written yet), added to the session.
    The caller commits. `fields` are any other User columns (`email_verified_at`, ...)."""
    user = User(
        email=email,
        display_name=display_name or email.partition("@")[0],
        password_hash=password_hash,
        **fields,
    )
    user.roles = [role if isinstance(role, Role) else role_named(role) for role in roles]
    db.session.add(user)
    return user
