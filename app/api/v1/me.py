"""`GET /api/v1/me`, `PATCH /api/v1/me`."""

from __future__ import annotations

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import MeOut, MePatch
from app.auth import accounts
from app.auth.guards import actor_permissions, current_actor, refuse_api_key
from app.users import service as users_service


def _me() -> MeOut:
    user = current_actor()
    return MeOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        roles=user.role_names,
        permissions=sorted(actor_permissions(user)),
        email_verified=user.email_verified_at is not None,
        locale=user.locale,
    )


@api_operation(v1_bp, "/me", summary="The signed-in user", tags=("me",), response=MeOut, auth=True)
def get_me() -> MeOut:
    return _me()


@api_operation(
    v1_bp,
    "/me",
    method="PATCH",
    summary="Update my profile",
    tags=("me",),
    body=MePatch,
    response=MeOut,
    auth=True,
    errors=(403, 422, 429),
)
def update_me(body: MePatch) -> MeOut:
    """A new email address needs `current_password` and is only taken once the confirmation
    link sent to it is used; the old address gets a notice with a link that undoes it.
    `locale` sets the language of pages and emails (null: the browser's). An API key may not
    change the email address (403 `api-key-not-allowed`)."""
    user = current_actor()
    if body.email is not None and body.email.strip().lower() != user.email:
        refuse_api_key()
    if body.model_fields_set != {"locale"}:
        accounts.update_profile(
            user, body.display_name or user.display_name, body.email or user.email, body.current_password
        )
    if "locale" in body.model_fields_set:
        users_service.set_preferred_locale(user, body.locale)
    return _me()
