"""The permissions Hearth knows and the built-in roles: the one place they are defined.

`flask roles sync` (also run by `make run` and `flask seed-admin`) writes them to the
database idempotently: missing roles and permissions are added (`--restore` also gives the
built-in roles back every grant below).
"""

from __future__ import annotations

from app.i18n import N_

# Each permission's description: stored as it is (the database, the API) and translated where
# a page shows it (app.admin.roles).
PERMISSIONS: dict[str, str] = {
    "users:read": N_("See any user account"),
    "users:write": N_("Edit any user account"),
    "users:delete": N_("Delete (soft) any user account"),
    "users:impersonate": N_("View the site as another user (read-only, 15 minutes)"),
    "roles:manage": N_("Grant and revoke roles"),
    "uploads:read_any": N_("See anyone's uploads"),
    "uploads:delete_any": N_("Delete anyone's uploads"),
    "jobs:read": N_("See background jobs"),
    "jobs:manage": N_("Retry and revoke background jobs"),
    "audit:read": N_("Read the audit trail"),
    "flags:manage": N_("Create and toggle feature flags"),
    "webhooks:manage": N_("Register, edit and test outbound webhooks"),
    "stats:read": N_("See the daily statistics"),
}

ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "admin": ("Everything", frozenset(PERMISSIONS)),
    "manager": (
        "Manages users and sees uploads and jobs",
        frozenset({"users:read", "users:write", "uploads:read_any", "jobs:read"}),
    ),
    "user": ("Works with their own resources", frozenset()),
    "viewer": ("Read-only access to their own resources", frozenset()),
}

DEFAULT_ROLE = "user"
ADMIN_ROLE = "admin"
