"""Imports every model module so the metadata (and Alembic autogenerate) sees all tables."""

from app.audit.models import AuditEvent
from app.auth.models import AccountToken, RefreshToken, UserSession
from app.cache.models import CacheGeneration
from app.exports.models import Export
from app.flags.models import FeatureFlag
from app.jobs.models import Job
from app.notifications.models import Notification, NotificationPreference
from app.rbac.models import Permission, Role
from app.uploads.models import Upload
from app.users.models import User

__all__ = [
    "AccountToken",
    "AuditEvent",
    "CacheGeneration",
    "Export",
    "FeatureFlag",
    "Job",
    "Notification",
    "NotificationPreference",
    "Permission",
    "RefreshToken",
    "Role",
    "Upload",
    "User",
    "UserSession",
]
