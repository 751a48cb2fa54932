"""Request and response schemas of `/api/v1/exports` (they also generate the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.pagination import PageQuery
from app.exports.catalogue import KIND_NAMES

FILTERS_DESCRIPTION = (
    "Depends on `kind` (an unknown or invalid field is a 422 naming `filters.<field>`): "
    "`account_data`: none. "
    "`users_csv`, `users_xlsx`: `q`, `role`, `status` (active, disabled, deleted, all), `verified` (bool), "
    "`sort` (email, display_name, created_at, last_login_at; `-` for descending), as on /admin/users. "
    "`audit_csv`: `actor`, `action`, `target`, `since`, `until` (YYYY-MM-DD, inclusive), `request_id`. "
    "`activity_pdf`: `since`, `until` (YYYY-MM-DD, inclusive; default the last 30 days, at most 366)."
)


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal[KIND_NAMES] = Field(
        description=(
            "`account_data` (anyone: everything Hearth holds about you, a ZIP); `users_csv`, `users_xlsx` "
            "(users:read); `audit_csv`, `activity_pdf` (audit:read)"
        )
    )
    filters: dict[str, Any] = Field(default_factory=dict, description=FILTERS_DESCRIPTION)


class ExportOut(BaseModel):
    """One export: its document is built on the `reports` queue, then kept until `expires_at`."""

    # A fresh 5-minute link on every read: not part of the representation's version.
    ETAG_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"download_url"})

    id: str
    kind: str
    filters: dict[str, Any]
    status: Literal["queued", "running", "ready", "failed", "expired"]
    progress: int = Field(ge=0, le=100, description="Percent done (rows written / total)")
    size: int | None = Field(description="Bytes, once ready")
    filename: str | None
    content_type: str | None
    error: str | None = Field(description="Why it failed, for people")
    job_id: str | None = Field(description="The `reports` job building it")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="When a ready export's file is deleted")
    download_url: str | None = Field(
        default=None, description="When ready: a link valid for 5 minutes that downloads the file as an attachment"
    )


class ExportListQuery(PageQuery):
    pass
