"""`/api/v1/api-keys`: personal API keys (issue 16).

Thin views over `app.apikeys.service`, the functions `/account/security` calls too. A key is
shown once, in the answer to creating it. Keys cannot manage keys: all three operations refuse
a request authenticated by one (403 `api-key-not-allowed`); creating one also needs a fresh
sign-in (an access token whose `auth_time` is within FRESH_AUTH_MINUTES, else 401
`reauthentication-required`).
"""

from __future__ import annotations

from flask import Response

from app.api.openapi import api_operation
from app.api.v1.apikey_schemas import ApiKeyCreatedOut, ApiKeyIn, ApiKeyList, ApiKeyOut
from app.api.v1.blueprint import v1_bp
from app.apikeys import service
from app.auth.freshness import fresh_auth_required
from app.auth.guards import current_actor, no_api_keys

TAGS = ("api-keys",)


@api_operation(
    v1_bp,
    "/api-keys",
    method="POST",
    summary="Create a personal API key",
    tags=TAGS,
    body=ApiKeyIn,
    response=ApiKeyCreatedOut,
    status=201,
    auth=True,
)
@no_api_keys
@fresh_auth_required
def create_api_key(body: ApiKeyIn) -> ApiKeyCreatedOut:
    """Answers the key (`hth_<prefix>_<secret>`) in `key`: store it now, it is never shown again.
    422 naming `scopes` for a scope you do not hold, `expires_in_days` beyond API_KEY_MAX_DAYS."""
    row, key = service.create(current_actor(), body.name, body.scopes, body.expires_in_days)
    return ApiKeyCreatedOut(**ApiKeyOut.model_validate(row, from_attributes=True).model_dump(), key=key)


@api_operation(v1_bp, "/api-keys", summary="List your API keys", tags=TAGS, response=ApiKeyList, auth=True)
@no_api_keys
def list_api_keys() -> ApiKeyList:
    """Your live keys, with when and from which address each was last used (no secrets)."""
    return ApiKeyList(
        items=[ApiKeyOut.model_validate(row, from_attributes=True) for row in service.list_for(current_actor().id)]
    )


@api_operation(
    v1_bp,
    "/api-keys/<int:key_id>",
    method="DELETE",
    summary="Revoke an API key",
    tags=TAGS,
    status=204,
    auth=True,
)
@no_api_keys
def delete_api_key(key_id: int) -> Response:
    """The key stops working at once, everywhere. 404 for a key that is not yours or no longer live."""
    service.revoke_own(current_actor(), key_id)
    return Response(status=204)
