"""`/admin`: users, roles, uploads, jobs, flags and the audit trail, as HTMX-enhanced pages that
work without JavaScript too. Views are thin: the rules live in the domain packages' services
(`management.py` in users, rbac and jobs; `service.py` in uploads and flags; audit queries)."""

from app.admin import (  # noqa: F401  (routes register on import)
    audit,
    dashboard,
    flags,
    impersonation,
    jobs,
    roles,
    uploads,
    users,
    webhooks,
)
from app.admin.common import admin_bp

__all__ = ["admin_bp"]
