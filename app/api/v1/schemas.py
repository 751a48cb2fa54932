"""Request and response schemas of API v1 (they also generate the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StatusOut(BaseModel):
    """What is serving this request."""

    name: str = Field(examples=["Hearth"])
    version: str = Field(examples=["0.1.0"])
    api_version: str = Field(examples=["v1"])
    uptime_seconds: int = Field(ge=0, description="Seconds since this process started")


class TokenRequest(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=20, max_length=200)


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Access token lifetime in seconds")


class MeOut(BaseModel):
    """The signed-in user."""

    id: int
    email: str
    display_name: str
    roles: list[str]
    permissions: list[str]
    email_verified: bool
