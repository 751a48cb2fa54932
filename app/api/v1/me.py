"""`GET /api/v1/me`."""

from __future__ import annotations

from app.api.openapi import api_operation
from app.api.v1 import v1_bp
from app.api.v1.schemas import MeOut
from app.auth.guards import actor_permissions, current_actor


@api_operation(v1_bp, "/me", summary="The signed-in user", tags=("users",), response=MeOut, auth=True)
def get_me() -> MeOut:
    user = current_actor()
    return MeOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        roles=user.role_names,
        permissions=sorted(actor_permissions(user)),
        email_verified=user.email_verified_at is not None,
    )
