"""Schemas of `/api/v1/notifications` (they also generate the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model

from app.api.pagination import PageQuery
from app.notifications.catalogue import KINDS


class NotificationOut(BaseModel):
    id: int
    kind: str = Field(examples=["export.ready"])
    title: str = Field(description="In the request's language (Accept-Language)")
    body: str = Field(description="In the request's language (Accept-Language)")
    link: str | None = Field(description="A path on this site the notification is about, if any", examples=["/exports"])
    created_at: datetime
    read_at: datetime | None = Field(description="When it was marked read; null while unread")


class NotificationListQuery(PageQuery):
    unread: bool = Field(default=False, description="Only unread notifications")


class ChannelPreferences(BaseModel):
    """Whether a kind reaches you in Hearth (`in_app`) and by email (`email`)."""

    model_config = ConfigDict(extra="forbid")

    in_app: StrictBool
    email: StrictBool


def _field_name(kind: str) -> str:
    return kind.replace(".", "__")


def _preferences_model() -> type[BaseModel]:
    """`{"<kind>": {"in_app": bool, "email": bool}, ...}` with one optional property per kind of
    the catalogue (so the document lists them); any other key is refused, naming it."""
    fields: dict[str, Any] = {
        _field_name(kind.name): (
            ChannelPreferences | None,
            Field(
                default=None,
                alias=kind.name,
                description=kind.label + (" (security notice: `email` is always true)" if kind.security else ""),
            ),
        )
        for kind in KINDS
    }
    return create_model(
        "NotificationPreferences",
        __config__=ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_alias=True, validate_by_name=False),
        __doc__="Channels per notification kind. In a PUT, kinds left out keep their setting; "
        "the answer lists every kind.",
        **fields,
    )


NotificationPreferences = _preferences_model()


def preferences_out(choices: dict[str, Any]) -> BaseModel:
    """The document of every kind's channels (`choices`: kind -> object with in_app, email)."""
    return NotificationPreferences.model_validate(
        {kind: {"in_app": choice.in_app, "email": choice.email} for kind, choice in choices.items()}
    )


def preferences_in(body: BaseModel) -> dict[str, ChannelPreferences]:
    """The kinds a PUT body sets (by their names, e.g. "export.ready")."""
    return {kind.name: value for kind in KINDS if (value := getattr(body, _field_name(kind.name))) is not None}
