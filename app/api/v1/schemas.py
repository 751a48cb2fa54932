"""Request and response schemas of API v1 (they also generate the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StatusOut(BaseModel):
    """What is serving this request."""

    name: str = Field(examples=["Hearth"])
    version: str = Field(examples=["0.1.0"])
    api_version: str = Field(examples=["v1"])
    uptime_seconds: int = Field(ge=0, description="Seconds since this process started")
