"""Imports every model module so the metadata (and Alembic autogenerate) sees all tables."""

from app.jobs.models import Job
from app.users.models import User

__all__ = ["Job", "User"]
