"""Request and response schemas of `/api/v1/api-keys` (they also generate the OpenAPI document).

The key itself is in one schema only, `ApiKeyCreatedOut`: the answer to creating it. No other
representation has it, and the server keeps only its hash.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.apikeys.service import DEFAULT_DAYS, NAME_MAX

SCOPES_DESCRIPTION = (
    "What the key may do: permissions you hold (e.g. `users:read`), and `self:read` / `self:write` for your own "
    "account, files, exports and notifications (`self:write` includes reading). At least one. At each request the "
    "key can use only the scopes you still hold."
)


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=NAME_MAX, description="What uses the key, for you", examples=["Backup script"]
    )
    scopes: list[str] = Field(
        min_length=1, max_length=64, description=SCOPES_DESCRIPTION, examples=[["self:read", "users:read"]]
    )
    expires_in_days: int = Field(
        default=DEFAULT_DAYS,
        ge=1,
        le=3650,
        description="Days until the key stops working: 1 up to API_KEY_MAX_DAYS (365 by default); 90 if left out.",
    )


class ApiKeyOut(BaseModel):
    """A personal API key, without its secret."""

    id: int
    name: str
    prefix: str = Field(description="The public part of the key (`hth_<prefix>_…`), to tell keys apart")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = Field(description="Recorded at most once a minute")
    last_used_ip: str | None = Field(description="The address of that last use")


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(
        description="The key (`hth_<prefix>_<secret>`), shown this once: send it as `Authorization: Bearer <key>`.",
        examples=["hth_k3x9q2m4ab_…"],
    )


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut] = Field(description="Your live keys (not revoked, not expired), newest first")
