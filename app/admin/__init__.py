"""`/admin`: users, roles, uploads, jobs and the audit trail, as HTMX-enhanced pages that work
without JavaScript too. Views are thin: the rules live in each feature's admin service."""

from flask import Blueprint

admin_bp = Blueprint("admin", __name__, url_prefix="/admin")

from app.admin import audit, dashboard, flags, jobs, roles, uploads, users  # noqa: E402,F401  (routes register on import)
