"""Request and response schemas of API v1 (they also generate the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.pagination import PageQuery
from app.core.input import MAX_BIGINT
from app.i18n import SUPPORTED_LOCALES


class StatusOut(BaseModel):
    """What is serving this request."""

    name: str = Field(examples=["Hearth"])
    version: str = Field(examples=["0.1.0"])
    api_version: str = Field(examples=["v1"])
    uptime_seconds: int = Field(ge=0, description="Seconds since this process started")


class FlagsOut(BaseModel):
    """The feature flags and whether each is on."""

    flags: dict[str, bool] = Field(examples=[{"new_dashboard": True, "beta_exports": False}])


class TokenRequest(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    otp: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "For an account with two-factor authentication: a current code of its authenticator app, or"
            " one of its unused recovery codes. Missing: 401 `otp-required`; wrong or replayed: 401"
            " `invalid-otp` (counts toward the lockout like a wrong password)."
        ),
        json_schema_extra={"writeOnly": True},
    )


class TotpEnrolmentOut(BaseModel):
    """A new authenticator app secret, not active until confirmed with a code."""

    secret: str = Field(description="Base32; type it into the app, or use `otpauth_uri`")
    otpauth_uri: str = Field(description="The otpauth:// URI an authenticator app reads (as a QR code)")


class TotpCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, description="The 6 digits the app shows now")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Single-use codes, shown only this once: store them safely")


class TotpDisable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(default=None, max_length=64, description="A current code of the app, or a recovery code")
    password: str | None = Field(
        default=None, max_length=1024, description="Instead of `code`", json_schema_extra={"writeOnly": True}
    )


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
    locale: str | None = Field(
        description="The language chosen for pages and emails; null: the browser's (`Accept-Language`)",
        examples=["de"],
    )


class MePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=120)
    email: str | None = Field(
        default=None,
        min_length=3,
        max_length=320,
        description=(
            "A new address takes effect once its confirmation link is used; the old address is told,"
            " with a link that undoes the change. Needs `current_password`."
        ),
    )
    current_password: str | None = Field(
        default=None,
        max_length=1024,
        description=(
            "Required to change `email`. Missing or wrong: 422 `current-password-invalid`; wrong too"
            " often: 429 `too-many-password-attempts` (counts toward the account lockout)."
        ),
        json_schema_extra={"writeOnly": True},
    )
    locale: Literal[SUPPORTED_LOCALES] | None = Field(
        default=None,
        description=(
            "The language of pages and emails; null: follow the browser's `Accept-Language`. API"
            " responses always follow the request's `Accept-Language`."
        ),
    )


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str
    roles: list[str] = Field(validation_alias="role_names")
    status: str = Field(examples=["active", "disabled", "deleted"])
    email_verified_at: datetime | None
    created_at: datetime
    last_login_at: datetime | None


class UserListQuery(PageQuery):
    q: str | None = Field(default=None, max_length=100, description="Part of the email or display name")
    role: str | None = Field(default=None, max_length=64)
    status: Literal["active", "disabled", "deleted"] | None = None
    sort: Literal[
        "email",
        "-email",
        "display_name",
        "-display_name",
        "created_at",
        "-created_at",
        "last_login_at",
        "-last_login_at",
    ] = "email"


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=120)
    is_active: bool | None = None
    roles: list[str] | None = Field(default=None, max_length=10, description="Needs roles:manage")


class RoleOut(BaseModel):
    name: str
    description: str
    permissions: list[str]


class RoleList(BaseModel):
    items: list[RoleOut]


class PresignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=3, max_length=127)
    size: int = Field(ge=1, le=MAX_BIGINT, description="Bytes")
    kind: Literal["avatar", "document", "video"]


class PresignedPostOut(BaseModel):
    url: str = Field(description="POST a multipart form here: every field below, then `file` last")
    fields: dict[str, str]


class PresignOut(BaseModel):
    upload_id: str
    upload: PresignedPostOut
    expires_in: int


class UploadOut(BaseModel):
    # A signed link is new on every request; the upload it points to is not (app.api.openapi).
    ETAG_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"thumbnail_url"})

    id: str
    kind: str
    status: str
    filename: str
    content_type: str
    size: int | None
    details: dict
    error: str | None
    created_at: datetime
    updated_at: datetime = Field(description="Last change of the upload (also sent as Last-Modified)")
    thumbnail_url: str | None = Field(
        default=None,
        description="A link valid for 5 minutes. It is not part of the ETag: a 304 does not renew "
        "it, so fetch without If-None-Match when you need a fresh one.",
    )


class UploadListQuery(PageQuery):
    kind: Literal["avatar", "document", "video"] | None = None
    status: Literal["pending", "uploaded", "processing", "ready", "rejected", "failed"] | None = None
    all_users: bool = Field(default=False, description="Everyone's uploads (needs uploads:read_any)")


class DownloadOut(BaseModel):
    url: str
    expires_in: int
