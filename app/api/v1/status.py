"""`GET /api/v1/status`."""

from __future__ import annotations

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import StatusOut
from app.core.http_cache import publicly_cacheable
from app.core.runtime import app_version, uptime_seconds


@api_operation(v1_bp, "/status", summary="Service status", tags=("meta",), response=StatusOut)
@publicly_cacheable(max_age=10)
def get_status() -> StatusOut:
    """Name, version and uptime of the serving process. Needs no authentication."""
    return StatusOut(name="Hearth", version=app_version(), api_version="v1", uptime_seconds=uptime_seconds())
