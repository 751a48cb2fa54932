"""Managing roles (roles:manage): create, edit the permission matrix, delete when unused.

One set of rules for the /admin/roles pages (the grid included) and the admin API:

- nobody edits or deletes a role holding a permission they lack (the rule that protects
  accounts in `app.users.management`), and nobody grants a permission they lack;
- the built-in `admin` role's permissions are never reduced here (only `flask roles sync
  --restore` on the server writes built-in grants), so holding `roles:manage` alone can
  never disarm the administrators;
- built-in roles cannot be deleted.

Each change is one unit of work (app.core.unit_of_work) with its audit rows; the queries are
app/rbac/repository.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from app.audit.service import record
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from app.i18n import _, ngettext
from app.rbac.catalog import ADMIN_ROLE, PERMISSIONS, ROLES
from app.rbac.models import Permission, Role
from app.rbac.repository import PermissionRepository, RoleRepository
from app.rbac.service import permissions_of, sync_roles
from app.users.models import User

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")

permission_repository = PermissionRepository()
role_repository = RoleRepository()


@dataclass(frozen=True)
class RoleSummary:
    role: Role
    members: int

    @property
    def built_in(self) -> bool:
        return self.role.name in ROLES


def _field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, errors=[{"field": field, "location": "body", "message": message, "type": "value_error"}]
    )


def get_role(name: str) -> Role:
    role = role_repository.find_by_name(name)
    if role is None:
        raise NotFound(_("No role named %(name)r.", name=name))
    return role


def member_count(role: Role) -> int:
    """Accounts holding the role, deleted ones left out (as in the list): deleting the role
    takes it from them too."""
    return role_repository.member_count(role.id)


def can_edit(actor_permissions: frozenset[str], role: Role) -> bool:
    """Whether someone holding `actor_permissions` may edit or delete `role` at all."""
    return {p.name for p in role.permissions} <= actor_permissions


def _check_can_edit(actor_permissions: frozenset[str], role: Role) -> None:
    """Nobody edits or deletes a role holding permissions they do not have: otherwise a holder
    of roles:manage alone could strip the admin role (or any wider role) of everything."""
    if not can_edit(actor_permissions, role):
        raise PermissionDenied(
            _(
                "The role %(name)r holds permissions you do not have; only someone who has them can change it.",
                name=role.name,
            )
        )


def _check_grantable(actor_permissions: frozenset[str], permissions: Iterable[str]) -> None:
    """Nobody hands out, or gives their own role, a permission they do not hold."""
    beyond = set(permissions) - actor_permissions
    if beyond:
        raise _field_error(
            "permissions",
            _("You cannot grant permissions you do not hold: %(permissions)s.", permissions=", ".join(sorted(beyond))),
        )


def list_roles() -> list[RoleSummary]:
    """Every role with its member count: two queries whatever the number of roles."""
    sync_roles()  # built-in roles always show, even on a fresh database
    counts = role_repository.member_counts()
    return [RoleSummary(role, counts.get(role.id, 0)) for role in role_repository.all()]


def role_summary(name: str) -> RoleSummary:
    """One role with the same member count as `list_roles` shows; NotFound if there is none."""
    for summary in list_roles():
        if summary.role.name == name:
            return summary
    raise NotFound(_("No role named %(name)r.", name=name))


def _permissions(names: Iterable[str]) -> list[Permission]:
    """The permissions named (the catalog's written first, in the caller's unit of work)."""
    wanted = sorted(set(names))
    unknown = [name for name in wanted if name not in PERMISSIONS]
    if unknown:
        raise _field_error("permissions", _("Unknown permission(s): %(permissions)s.", permissions=", ".join(unknown)))
    sync_roles()
    found = {p.name: p for p in permission_repository.named(wanted)}
    return [found[name] for name in wanted]


def create_role(actor: User, name: str, description: str, permissions: Iterable[str]) -> Role:
    name = (name or "").strip().lower()
    if not ROLE_NAME.match(name):
        raise _field_error(
            "name", _("2–64 characters: lower-case letters, digits, '-' and '_', starting with a letter.")
        )
    if role_repository.name_taken(name):
        raise _field_error("name", _("A role named %(name)r already exists.", name=name))
    with unit_of_work():
        granted = _permissions(permissions)
        _check_grantable(permissions_of(actor.id), (p.name for p in granted))
        role = role_repository.add(Role(name=name, description=(description or "").strip()[:200], permissions=granted))
        record(
            "role_created",
            actor_id=actor.id,
            target=f"role:{name}",
            after={"permissions": sorted(p.name for p in role.permissions), "description": role.description},
        )
    return role


def update_role(
    actor: User,
    role: Role,
    permissions: Iterable[str],
    description: str | None = None,
    *,
    actor_permissions: frozenset[str] | None = None,
) -> Role:
    """Replace the role's permissions (the checkbox grid) and, optionally, its description:
    one unit of work with its audit row (part of the caller's, as in `update_grid`).

    PermissionDenied when the role holds a permission the actor lacks; ValidationFailed for an
    unknown permission, a grant beyond the actor's own, or any reduction of the admin role."""
    with unit_of_work():
        held = actor_permissions if actor_permissions is not None else permissions_of(actor.id)
        _check_can_edit(held, role)
        new_permissions = _permissions(permissions)
        new_names = [p.name for p in new_permissions]
        current = {p.name for p in role.permissions}
        _check_grantable(held, set(new_names) - current)
        removed = current - set(new_names)
        if role.name == ADMIN_ROLE and removed:
            raise _field_error(
                "permissions",
                _(
                    "The built-in admin role always keeps every permission it has (not removed: %(permissions)s).",
                    permissions=", ".join(sorted(removed)),
                ),
            )
        before = {"permissions": sorted(p.name for p in role.permissions), "description": role.description}
        role.permissions = new_permissions
        if description is not None:
            role.description = description.strip()[:200]
        after = {"permissions": new_names, "description": role.description}
        changed = sorted(key for key in after if after[key] != before[key])
        if changed:
            record(
                "role_updated",
                actor_id=actor.id,
                target=f"role:{role.name}",
                before={key: before[key] for key in changed},
                after={key: after[key] for key in changed},
            )
        return role


def update_grid(actor: User, grants: dict[str, set[str]]) -> list[str]:
    """Save the whole role × permission grid at once: every changed role, or none if any
    change is refused. Returns the names of the roles that changed."""
    held = permissions_of(actor.id)  # what the actor held before this save, not midway through it
    changed = []
    with unit_of_work():
        for summary in list_roles():
            role = summary.role
            wanted = grants.get(role.name, set())
            if wanted != {p.name for p in role.permissions}:
                update_role(actor, role, wanted, actor_permissions=held)
                changed.append(role.name)
    return changed


def delete_role(actor: User, role: Role, actor_permissions: frozenset[str] | None = None) -> None:
    """Delete an unused custom role. PermissionDenied when it holds a permission the actor
    lacks; Conflict for a built-in role or one that accounts hold."""
    _check_can_edit(actor_permissions if actor_permissions is not None else permissions_of(actor.id), role)
    if role.name in ROLES:
        raise Conflict(_("%(name)r is a built-in role and cannot be deleted.", name=role.name))
    members = member_count(role)
    if members:
        raise Conflict(
            ngettext(
                "%(name)r is held by %(num)d account: take it away from them first.",
                "%(name)r is held by %(num)d accounts: take it away from them first.",
                members,
                name=role.name,
            )
        )
    with unit_of_work():
        record(
            "role_deleted",
            actor_id=actor.id,
            target=f"role:{role.name}",
            before={"permissions": sorted(p.name for p in role.permissions), "description": role.description},
        )
        role_repository.remove_grants(role.id)  # deleted accounts' grants
        role_repository.delete(role)
