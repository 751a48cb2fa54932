"""Version 1 of the JSON API."""

from app.api.v1 import (  # noqa: F401  (routes register on import)
    admin,
    api_keys,
    auth,
    exports,
    flags,
    me,
    notifications,
    stats,
    status,
    totp,
    uploads,
    users,
    webhooks,
)
from app.api.v1.blueprint import v1_bp

__all__ = ["v1_bp"]
