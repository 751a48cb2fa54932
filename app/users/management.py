"""Managing other people's accounts: one set of rules for the admin pages and the JSON API.

Routes check the page-level permission (users:write, users:delete); the rules here add what
depends on the target: nobody manages an account holding permissions they lack, changing
roles needs roles:manage, and the site always keeps one active administrator.
Every change is audited with its before → after values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select

from app.audit.service import record
from app.auth import second_factor
from app.auth.accounts import send_password_reset_link
from app.auth.service import sign_out_everywhere
from app.core.database import utcnow
from app.core.hosts import app_path
from app.core.pagination import Page, count_rows, paginate
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from app.i18n import _, ngettext
from app.notifications.service import notify
from app.rbac.catalog import ADMIN_ROLE
from app.rbac.models import Role
from app.rbac.service import permissions_of, role_named
from app.users.cache import dashboard_counts
from app.users.models import User
from app.users.repository import SORTABLE, UserRepository, user_list_statement
from app.webhooks.catalogue import role_change_data, user_data
from app.webhooks.service import emit

users = UserRepository()
STATUSES = ("active", "disabled", "deleted", "all")
LIST_STATEMENTS = "hearth.user_list_statements"  # app.extensions: filters → statement


def get_user(user_id: int, include_deleted: bool = False) -> User:
    user = users.get(user_id)
    if user is None or (user.deleted_at is not None and not include_deleted):
        raise NotFound(_("No user with id %(id)s.", id=user_id))
    return user


def _check_can_manage(actor_permissions: frozenset[str], user: User) -> None:
    """Nobody manages an account that holds permissions they do not have themselves."""
    missing = permissions_of(user.id) - actor_permissions
    if missing:
        raise PermissionDenied(
            _("This account holds permissions you do not have; only someone who has them can change it.")
        )


def active_admin_ids() -> set[int]:
    """Accounts that can still administer the site: active, not deleted, holding the admin role."""
    return users.active_admin_ids()


def _keep_an_admin(user: User, change: str) -> None:
    """Refuse a change that would leave the site without an active administrator; `change`
    says which: "remove_admin", "disable" or "delete" (each refusal is its own sentence)."""
    if ADMIN_ROLE in user.role_names and user.is_active and active_admin_ids() <= {user.id}:
        if change == "remove_admin":
            message = _(
                "%(email)s is the last active administrator: removing their admin role would lock everyone out.",
                email=user.email,
            )
        elif change == "disable":
            message = _(
                "%(email)s is the last active administrator: disabling them would lock everyone out.", email=user.email
            )
        else:
            message = _(
                "%(email)s is the last active administrator: deleting them would lock everyone out.", email=user.email
            )
        raise Conflict(message)


def _snapshot(user: User) -> dict[str, Any]:
    return {
        "display_name": user.display_name,
        "is_active": user.is_active_account,
        "roles": user.role_names,
        "email_verified": user.email_verified_at is not None,
    }


def _roles_named(names: Iterable[str]) -> list[Role]:
    try:
        return [role_named(name) for name in sorted(set(names))]
    except NotFound as error:
        raise ValidationFailed(
            error.detail,
            errors=[{"field": "roles", "location": "body", "message": error.detail, "type": "value_error"}],
        ) from None


def update_user(
    actor: User,
    actor_permissions: frozenset[str],
    user: User,
    *,
    display_name: str | None = None,
    is_active: bool | None = None,
    roles: list[str] | None = None,
    email_verified: bool | None = None,
) -> User:
    """Apply every change or none, in one unit of work: all checks run before anything is written."""
    with unit_of_work():
        _check_can_manage(actor_permissions, user)
        before = _snapshot(user)
        new_roles = None
        if roles is not None:
            if "roles:manage" not in actor_permissions:
                raise PermissionDenied(_("Changing roles needs the 'roles:manage' permission."))
            new_roles = _roles_named(roles)
            added = {role.name for role in new_roles} - set(user.role_names)
            beyond = {p.name for role in new_roles if role.name in added for p in role.permissions} - actor_permissions
            if beyond:
                raise PermissionDenied(
                    _(
                        "Granting that role would give permissions you do not hold: %(permissions)s.",
                        permissions=", ".join(sorted(beyond)),
                    )
                )
            losing_admin = ADMIN_ROLE in user.role_names and ADMIN_ROLE not in {role.name for role in new_roles}
            if losing_admin and user.id == actor.id:
                raise Conflict(_("You cannot remove your own admin role."))
            if losing_admin:
                _keep_an_admin(user, "remove_admin")
        if is_active is False and user.is_active_account:
            if user.id == actor.id:
                raise Conflict(_("You cannot disable your own account."))
            _keep_an_admin(user, "disable")
        if display_name is not None:
            if not display_name.strip():
                raise ValidationFailed(
                    _("The display name cannot be empty."),
                    errors=[
                        {
                            "field": "display_name",
                            "location": "body",
                            "message": _("Cannot be empty."),
                            "type": "value_error",
                        }
                    ],
                )
            user.display_name = display_name.strip()
        if new_roles is not None:
            user.roles = new_roles
        if email_verified is not None and email_verified != (user.email_verified_at is not None):
            user.email_verified_at = utcnow() if email_verified else None
        if is_active is not None and is_active != user.is_active_account:
            user.is_active_account = is_active
            if not is_active:
                sign_out_everywhere(user, reason="disabled", actor_id=actor.id)
        after = _snapshot(user)
        changed = {key for key in after if after[key] != before[key]}
        if changed:
            event = _event_for(changed, after)
            record(
                event,
                actor_id=actor.id,
                subject_id=user.id,
                before={key: before[key] for key in sorted(changed)},
                after={key: after[key] for key in sorted(changed)},
            )
        if "roles" in changed and user.id != actor.id:
            notify(user, "account.role_changed", params={"roles": ", ".join(after["roles"]) or "—"})
        _announce(user, changed, before, after)
    return user


def _announce(user: User, changed: set[str], before: dict[str, Any], after: dict[str, Any]) -> None:
    """The webhook events of an update_user change (docs/webhooks.md): role.changed for the
    roles, user.disabled when it was disabled, user.updated for anything else (enabling too)."""
    if "roles" in changed:
        emit("role.changed", role_change_data(user, before["roles"], after["roles"]))
    if "is_active" in changed and not after["is_active"]:
        emit("user.disabled", user_data(user))
    elif changed - {"roles"}:
        emit("user.updated", user_data(user))


def _event_for(changed: set[str], after: dict[str, Any]) -> str:
    """A specific name when one thing changed (what admins filter the audit trail by)."""
    if changed == {"roles"}:
        return "roles_changed"
    if changed == {"is_active"}:
        return "user_enabled" if after["is_active"] else "user_disabled"
    if changed == {"email_verified"}:
        return "email_marked_verified" if after["email_verified"] else "email_marked_unverified"
    return "user_updated"


def delete_user(actor: User, actor_permissions: frozenset[str], user: User) -> None:
    """Soft delete: the row stays for the audit trail; sign-in, sessions and tokens end."""
    with unit_of_work():
        _check_can_manage(actor_permissions, user)
        if user.id == actor.id:
            raise Conflict(_("You cannot delete your own account here."))
        _keep_an_admin(user, "delete")
        user.deleted_at = utcnow()
        user.is_active_account = False
        record("user_deleted", actor_id=actor.id, subject_id=user.id, before={"email": user.email})
        sign_out_everywhere(user, reason="deleted", actor_id=actor.id)
        emit("user.deleted", user_data(user))


def force_sign_out(actor: User, actor_permissions: frozenset[str], user: User) -> None:
    """End every browser session and revoke every access and refresh token the user holds."""
    with unit_of_work():
        _check_can_manage(actor_permissions, user)
        before = user.session_epoch
        sign_out_everywhere(user, reason="admin", actor_id=actor.id)
        record(
            "user_signed_out_by_admin",
            actor_id=actor.id,
            subject_id=user.id,
            before={"session_epoch": before},
            after={"session_epoch": user.session_epoch},
        )


def reset_two_factor(actor: User | None, actor_permissions: frozenset[str] | None, user: User) -> None:
    """For someone who lost their authenticator and their recovery codes: remove every second
    factor of the user (app, passkeys, recovery codes) and sign them out everywhere; they sign
    in with their password next and may set a factor up again (REQUIRE_2FA_FOR_ROLES sends
    them there). The owner gets a security notice. `actor` None: the command line."""
    with unit_of_work():
        if actor_permissions is not None:
            _check_can_manage(actor_permissions, user)
        if not second_factor.remove_all(user):
            raise Conflict(_("This account has no second factor to reset."))
        actor_id = actor.id if actor is not None else None
        sign_out_everywhere(user, reason="two_factor_reset", actor_id=actor_id)
        record("two_factor_reset", actor_id=actor_id, subject_id=user.id)
        notify(user, "security.two_factor_reset", link=app_path("account.security"))


def send_password_reset(actor: User, actor_permissions: frozenset[str], user: User) -> None:
    """Email the user a reset link (the admin never sees or sets the password)."""
    with unit_of_work():
        _check_can_manage(actor_permissions, user)
        if not user.is_active:
            raise Conflict(_("The account is disabled: enable it before sending a reset link."))
        send_password_reset_link(user)
        record("password_reset_sent_by_admin", actor_id=actor.id, subject_id=user.id)


# Lists -------------------------------------------------------------------------------------


def _list_statement(filters: dict[str, Any]) -> Select:
    """`user_list_statement(**filters)`, built once per app for each combination of the
    validated filters (status, verified, sort: about a hundred): building it costs more than
    running it from SQLAlchemy's compiled cache, and statements are immutable, so one serves
    every request. A search or a role (free text from the query string) is built each time."""
    if filters["sort"].lstrip("-") not in SORTABLE:
        raise ValidationFailed(_("Users cannot be sorted by %(sort)r.", sort=filters["sort"]))
    if filters["q"] is not None or filters["role"] is not None:
        return user_list_statement(**filters)
    built = current_app.extensions.setdefault(LIST_STATEMENTS, {})
    key = tuple(sorted(filters.items()))
    statement = built.get(key)
    if statement is None:
        statement = built[key] = user_list_statement(**filters)
    return statement


def list_users(filters: dict[str, Any], page: int, per_page: int) -> Page[User]:
    """One page of the users matching `filters` (q, role, status, verified, sort: the
    arguments of app.users.repository.user_list_statement)."""
    return paginate(_list_statement(filters), page, per_page)


def role_names() -> list[str]:
    """Every role's name, sorted (for filters and role pickers)."""
    return users.role_names()


def list_roles() -> list[Role]:
    """Every role with its permissions, by name."""
    return users.roles()


# Bulk actions ------------------------------------------------------------------------------


@dataclass
class BulkOutcome:
    """What a bulk action did: the users changed, and the ones skipped with the reason."""

    changed: list[User] = field(default_factory=list)
    skipped: list[tuple[User, str]] = field(default_factory=list)

    def summary(self, done: str) -> str:
        """`done` (what happened to the changed users, a whole sentence the caller translated
        with ngettext for `len(changed)`), then who was skipped and why."""
        if not self.skipped:
            return done
        reasons = "; ".join(f"{user.email}: {reason}" for user, reason in self.skipped)
        skipped = ngettext(
            "Skipped %(num)d user: %(reasons)s",
            "Skipped %(num)d users: %(reasons)s",
            len(self.skipped),
            reasons=reasons,
        )
        return f"{done} {skipped}"


def _users_by_ids(user_ids: Iterable[int]) -> list[User]:
    ids = sorted({int(user_id) for user_id in user_ids})
    if not ids:
        raise ValidationFailed(_("Select at least one user."))
    return users.live_by_ids(ids)


def _bulk(selected: list[User], change) -> BulkOutcome:
    """Each user in its own unit of work (`change` opens it, and this runs in none): a refusal
    rolls back only that user's change, never the others'."""
    outcome = BulkOutcome()
    for user in selected:
        try:
            change(user)
        except DomainError as error:
            outcome.skipped.append((user, error.detail))
        else:
            outcome.changed.append(user)
    return outcome


def bulk_disable(actor: User, actor_permissions: frozenset[str], user_ids: Iterable[int]) -> BulkOutcome:
    selected = [user for user in _users_by_ids(user_ids) if user.is_active_account]
    return _bulk(selected, lambda user: update_user(actor, actor_permissions, user, is_active=False))


def bulk_assign_role(
    actor: User, actor_permissions: frozenset[str], user_ids: Iterable[int], role_name: str
) -> BulkOutcome:
    if "roles:manage" not in actor_permissions:
        raise PermissionDenied(_("Changing roles needs the 'roles:manage' permission."))
    if not role_name:
        raise ValidationFailed(_("Choose a role to assign."))
    _roles_named([role_name])  # a clear error before touching anyone
    selected = [user for user in _users_by_ids(user_ids) if role_name not in user.role_names]
    return _bulk(
        selected, lambda user: update_user(actor, actor_permissions, user, roles=[*user.role_names, role_name])
    )


# Export ------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("id", "email", "display_name", "status", "roles", "email_verified", "created_at", "last_login_at")
EXPORT_BATCH = 500


def count_users(filters: dict[str, Any]) -> int:
    """How many users `filters` match (one count query, as `list_users` counts its pages)."""
    return count_rows(_list_statement(filters))


def export_batches(filters: dict[str, Any]) -> Iterator[list[tuple[Any, ...]]]:
    """The users `filters` match (as `list_users`), in batches of EXPORT_BATCH rows fetched
    from a server-side cursor, never all in memory. A row holds EXPORT_COLUMNS's values as
    they are (int id, str texts, bool email_verified, datetimes); `csv_cells` makes a CSV row
    of one. The users CSV on /admin/users and the reports queue's CSV and XLSX share this."""
    for batch in users.stream(_list_statement(filters), EXPORT_BATCH):
        yield [
            (
                user.id,
                user.email,
                user.display_name,
                user.status,
                " ".join(user.role_names),
                user.email_verified_at is not None,
                user.created_at,
                user.last_login_at,
            )
            for user in batch
        ]


def csv_cells(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """One `export_batches` row as CSV cells: texts defused (`csv_safe`), yes/no, ISO 8601 times."""
    user_id, email, display_name, status, roles, verified, created_at, last_login_at = row
    return (
        user_id,
        csv_safe(email),
        csv_safe(display_name),
        status,
        roles,
        "yes" if verified else "no",
        created_at.isoformat(),
        last_login_at.isoformat() if last_login_at else "",
    )


def csv_safe(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ (or a tab or carriage return before one)
    as formulas (CSV injection): such a cell gets a leading apostrophe, which they show as text."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# Dashboard figures ---------------------------------------------------------------------------


def counts_by_status() -> dict[str, int]:
    """Accounts per status (active, disabled, deleted) and how many are unverified (cached 30 s;
    any user write invalidates it, see app/users/cache.py)."""
    return dashboard_counts(_count_by_status, "status")


def _count_by_status() -> dict[str, int]:
    counts = dict.fromkeys(("active", "disabled", "deleted"), 0)
    counts.update(users.count_by_status())
    counts["unverified"] = users.count_unverified()
    return counts


def signups_since(days: int) -> int:
    def count() -> dict[str, int]:
        return {"count": users.count_created_since(utcnow() - timedelta(days=days))}

    return dashboard_counts(count, f"signups:{days}")["count"]
