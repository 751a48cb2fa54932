"""Managing other people's accounts (users:write, users:delete, roles:manage): one set of
rules for the JSON API now and the admin pages later."""

from __future__ import annotations

from app.audit.service import record
from app.auth.service import sign_out_everywhere
from app.core.database import utcnow
from app.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from app.extensions import db
from app.rbac.service import role_named
from app.users.models import User


def get_user(user_id: int, include_deleted: bool = False) -> User:
    user = db.session.get(User, user_id)
    if user is None or (user.deleted_at is not None and not include_deleted):
        raise NotFound(f"No user with id {user_id}.")
    return user


def _check_can_manage(actor_permissions: frozenset[str], user: User) -> None:
    """Nobody manages an account that holds permissions they do not have themselves."""
    from app.rbac.service import permissions_of

    missing = permissions_of(user.id) - actor_permissions
    if missing:
        raise PermissionDenied(
            "This account holds permissions you do not have; only someone who has them can change it."
        )


def update_user(
    actor: User,
    actor_permissions: frozenset[str],
    user: User,
    *,
    display_name: str | None = None,
    is_active: bool | None = None,
    roles: list[str] | None = None,
) -> User:
    """Apply every change or none: all checks run before anything is written."""
    _check_can_manage(actor_permissions, user)
    wanted: list[str] | None = None
    new_roles = None
    if roles is not None:
        if "roles:manage" not in actor_permissions:
            raise PermissionDenied("Changing roles needs the 'roles:manage' permission.")
        wanted = sorted(set(roles))
        if user.id == actor.id and "admin" in user.role_names and "admin" not in wanted:
            raise Conflict("You cannot remove your own admin role.")
        try:
            new_roles = [role_named(name) for name in wanted]
        except NotFound as error:
            raise ValidationFailed(
                error.detail,
                errors=[{"field": "roles", "location": "body", "message": error.detail, "type": "value_error"}],
            ) from None
    if is_active is False and user.id == actor.id:
        raise Conflict("You cannot disable your own account.")
    if display_name is not None:
        user.display_name = display_name.strip()
    if new_roles is not None:
        user.roles = new_roles
        record("roles_changed", actor_id=actor.id, subject_id=user.id, roles=wanted)
    if is_active is not None and is_active != user.is_active_account:
        user.is_active_account = is_active
        record("user_disabled" if not is_active else "user_enabled", actor_id=actor.id, subject_id=user.id)
        if not is_active:
            sign_out_everywhere(user, reason="disabled", commit=False)
    record("user_updated", actor_id=actor.id, subject_id=user.id)
    db.session.commit()
    return user


def delete_user(actor: User, actor_permissions: frozenset[str], user: User) -> None:
    """Soft delete: the row stays for the audit trail; sign-in, sessions and tokens end."""
    _check_can_manage(actor_permissions, user)
    if user.id == actor.id:
        raise Conflict("You cannot delete your own account here.")
    user.deleted_at = utcnow()
    user.is_active_account = False
    record("user_deleted", actor_id=actor.id, subject_id=user.id)
    sign_out_everywhere(user, reason="deleted", commit=False)
    db.session.commit()
