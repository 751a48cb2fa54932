"""Imports every model module so the metadata (and Alembic autogenerate) sees all tables."""

from app.apikeys.models import ApiKey
from app.audit.models import AuditEvent
from app.auth.models import AccountToken, Passkey, RecoveryCode, RefreshToken, TotpCredential, UserSession
from app.cache.models import CacheGeneration
from app.exports.models import Export
from app.flags.models import FeatureFlag
from app.jobs.models import Job
from app.notifications.models import Notification, NotificationPreference
from app.rbac.models import Permission, Role
from app.stats.models import DailyStat
from app.uploads.models import Upload
from app.users.models import User
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditEvent",
    "CacheGeneration",
    "DailyStat",
    "Export",
    "FeatureFlag",
    "Job",
    "Notification",
    "NotificationPreference",
    "Passkey",
    "Permission",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "TotpCredential",
    "Upload",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookEndpoint",
]
