"""Version 1 of the JSON API."""

from app.api.v1 import admin, auth, me, status, uploads, users  # noqa: F401  (routes register on import)
from app.api.v1.blueprint import v1_bp

__all__ = ["v1_bp"]
