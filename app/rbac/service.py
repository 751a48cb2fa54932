"""Role sync, grants and permission checks. The queries are app/rbac/repository.py."""

from __future__ import annotations

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.cache import CacheKey, bump, cached, invalidate
from app.core.unit_of_work import unit_of_work
from app.errors import NotFound
from app.i18n import _
from app.rbac.catalog import PERMISSIONS, ROLES
from app.rbac.models import Permission, Role
from app.rbac.repository import PermissionRepository, RoleRepository
from app.users.models import User

permission_repository = PermissionRepository()
role_repository = RoleRepository()


def sync_roles(restore_grants: bool = False) -> None:
    """Write the catalog's permissions and built-in roles; idempotent, never removes anything.
    A unit of work: inside a caller's unit it is part of it (flushed, so the rows have ids).

    Missing built-in roles are created with their catalog grants. An existing built-in role
    keeps what admins made of it, and only gains permissions new to the database (so a
    release that adds a permission grants it to `admin` without undoing anyone's edits).
    `restore_grants=True` (`flask roles sync --restore`) re-adds every catalog grant."""
    with unit_of_work() as session:
        by_name = {p.name: p for p in permission_repository.all()}
        new_permissions = set()
        for name, description in PERMISSIONS.items():
            if name not in by_name:
                by_name[name] = permission_repository.add(Permission(name=name, description=description))
                new_permissions.add(name)
        existing = {r.name: r for r in role_repository.all()}
        for name, (description, granted) in ROLES.items():
            role = existing.get(name)
            if role is None:
                role = role_repository.add(Role(name=name, description=description))
                to_grant = granted
            else:
                to_grant = granted if restore_grants else granted & new_permissions
            have = {p.name for p in role.permissions}
            role.permissions.extend(by_name[p] for p in sorted(to_grant - have))
        session.flush()


def role_named(name: str) -> Role:
    """The role called `name`; built-in roles are written on first use if they are missing
    (in the caller's unit of work, if it has one)."""
    role = role_repository.find_by_name(name)
    if role is None and name in ROLES:
        sync_roles()
        role = role_repository.find_by_name(name)
    if role is None:
        raise NotFound(_("No role named %(name)r.", name=name))
    return role


PERMISSIONS_NAMESPACE = "perms"
PERMISSIONS_TTL = 300


def permissions_of(user_id: int) -> frozenset[str]:
    """Every permission the user holds through any role: L1 (30 s, dropped on every instance
    when it changes), then L2 (5 min), then one query."""
    return cached(
        CacheKey(PERMISSIONS_NAMESPACE, str(user_id)),
        lambda: _query_permissions(user_id),
        timeout=PERMISSIONS_TTL,
        local=True,
    )


def forget_permissions(user_id: int) -> None:
    """Invalidator of `permissions_of(user_id)`: the user's roles changed."""
    invalidate(CacheKey(PERMISSIONS_NAMESPACE, str(user_id)))


def forget_all_permissions() -> None:
    """Invalidator of every `permissions_of`: a role's permissions changed, or a role went."""
    bump(PERMISSIONS_NAMESPACE)


def _query_permissions(user_id: int) -> frozenset[str]:
    return permission_repository.names_held_by(user_id)


def role_names_of(user_id: int) -> list[str]:
    """The names of the user's roles, sorted."""
    return role_repository.names_held_by(user_id)


@event.listens_for(Session, "before_flush")
def _forget_changed_grants(session: Session, flush_context, instances) -> None:
    """Every write path that changes who holds what calls the invalidators: a role whose
    permissions change (or that is deleted) drops every permission set; a user whose roles
    change drops theirs. Run after the commit (see app.cache.aside)."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, Role) and (obj in session.deleted or _changed(obj, "permissions")):
            forget_all_permissions()
        elif isinstance(obj, User) and _changed(obj, "roles"):
            forget_permissions(obj.id)


def _changed(obj, attribute: str) -> bool:
    return inspect(obj).attrs[attribute].history.has_changes()
