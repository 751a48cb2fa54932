"""The permissions Hearth knows and the built-in roles: the one place they are defined.

`flask roles sync` (also run by `make run` and `flask seed-admin`) writes them to the
database idempotently: missing roles and permissions are added (`--restore` also gives the
built-in roles back every grant below).
"""

from __future__ import annotations

PERMISSIONS: dict[str, str] = {
    "users:read": "See any user account",
    "users:write": "Edit any user account",
    "users:delete": "Delete (soft) any user account",
    "roles:manage": "Grant and revoke roles",
    "uploads:read_any": "See anyone's uploads",
    "uploads:delete_any": "Delete anyone's uploads",
    "jobs:read": "See background jobs",
    "jobs:manage": "Retry and revoke background jobs",
    "audit:read": "Read the audit trail",
    "flags:manage": "Create and toggle feature flags",
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
