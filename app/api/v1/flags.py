"""`GET /api/v1/flags`: the feature flags, for clients that show or hide what a flag gates."""

from __future__ import annotations

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import FlagsOut
from app.flags.service import flag_states


@api_operation(v1_bp, "/flags", summary="Feature flags", tags=("meta",), response=FlagsOut, auth=True)
def get_flags() -> FlagsOut:
    """Every feature flag and whether it is on; an unknown flag is off. Read from the cache
    like `feature_enabled`: a flag an admin turns on or off is seen here, on every instance,
    within a second."""
    return FlagsOut(flags=flag_states())
