"""The kinds of export: who may ask for each and the filters each takes (pydantic models).

The filters are validated here, once, for the API and the `/exports` forms alike, and stored
as their JSON dump (`Export.filters`): what the kind's renderer (app.exports.renderers)
receives. An unknown kind or a bad filter is a ValidationFailed naming the field
(`kind`, `filters.since`, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.core.database import utcnow
from app.errors import ValidationFailed
from app.exports.renderers import RENDERERS
from app.i18n import _
from app.users.repository import SORTABLE

ACTIVITY_DEFAULT_DAYS = 30
ACTIVITY_MAX_DAYS = 366
# Days a report or audit export may name: nothing happened before Hearth's data existed, and
# bounds keep day arithmetic (`until + 1 day`, `until - 29 days`) clear of date.min/date.max.
EARLIEST_DAY = date(2000, 1, 1)


class NoFilters(BaseModel):
    """account_data: everything about the owner; nothing to choose."""

    model_config = ConfigDict(extra="forbid")


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _plausible_day(value: date | None) -> date | None:
    """A day from EARLIEST_DAY to tomorrow (UTC), or ValueError (a 422 naming the field)."""
    if value is None:
        return None
    latest = utcnow().date() + timedelta(days=1)
    if not EARLIEST_DAY <= value <= latest:
        raise ValueError(_("must be a day from %(earliest)s to %(latest)s.", earliest=EARLIEST_DAY, latest=latest))
    return value


class UserFilters(BaseModel):
    """users_csv / users_xlsx: the filters of /admin/users (app.admin.users `_filters`)."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=100, description="Email or name contains")
    role: str | None = Field(default=None, max_length=64, description="Holds this role")
    status: Literal["active", "disabled", "deleted", "all"] | None = None
    verified: bool | None = None
    sort: str = Field(default="email", description="email, display_name, created_at or last_login_at; `-` descending")

    _blank = field_validator("q", "role", "status", "verified", mode="before")(_blank_is_none)

    @field_validator("sort", mode="before")
    @classmethod
    def _known_sort(cls, value: Any) -> Any:
        if value is None or value == "":
            return "email"
        if not isinstance(value, str) or value.lstrip("-") not in SORTABLE:
            raise ValueError(
                _("must be one of %(choices)s, optionally with a leading '-'.", choices=", ".join(sorted(SORTABLE)))
            )
        return value


class AuditFilters(BaseModel):
    """audit_csv: the filters of /admin/audit."""

    model_config = ConfigDict(extra="forbid")
    RANGE_FIELD: ClassVar[str] = "until"  # where a bad range is reported

    actor: str | None = Field(default=None, max_length=100, description="Actor email (or part), or #<id>")
    action: str | None = Field(default=None, max_length=64)
    target: str | None = Field(default=None, max_length=160, description="e.g. user:7, or a prefix like job:")
    since: date | None = None
    until: date | None = Field(default=None, description="Inclusive")
    request_id: str | None = Field(default=None, max_length=128)

    _blank = field_validator("actor", "action", "target", "since", "until", "request_id", mode="before")(_blank_is_none)
    _days = field_validator("since", "until")(_plausible_day)

    @model_validator(mode="after")
    def _ordered(self) -> AuditFilters:
        if self.since and self.until and self.since > self.until:
            raise ValueError(_("The start date must not be after the end date."))
        return self


class ActivityFilters(BaseModel):
    """activity_pdf: a date range, both days included; the last 30 days by default, 366 at most."""

    model_config = ConfigDict(extra="forbid")
    RANGE_FIELD: ClassVar[str] = "until"  # where a bad range is reported

    since: date | None = None
    until: date | None = Field(default=None, description="Inclusive; default today")

    _blank = field_validator("since", "until", mode="before")(_blank_is_none)
    _days = field_validator("since", "until")(_plausible_day)

    @model_validator(mode="after")
    def _range(self) -> ActivityFilters:
        default_since, default_until = activity_default_range()
        until = self.until or default_until
        since = self.since or until - (default_until - default_since)
        if since > until:
            raise ValueError(_("The start date must not be after the end date."))
        if (until - since).days + 1 > ACTIVITY_MAX_DAYS:
            raise ValueError(_("The range can cover at most %(days)s days.", days=ACTIVITY_MAX_DAYS))
        self.since, self.until = since, until
        return self


def activity_default_range() -> tuple[date, date]:
    """The activity report's range when none is given: the last 30 days, today included."""
    until = utcnow().date()
    return until - timedelta(days=ACTIVITY_DEFAULT_DAYS - 1), until


@dataclass(frozen=True)
class ExportKind:
    name: str
    permission: str | None  # None: any signed-in user (for their own data)
    filters: type[BaseModel]


KINDS: dict[str, ExportKind] = {
    kind.name: kind
    for kind in (
        ExportKind("account_data", None, NoFilters),
        ExportKind("users_csv", "users:read", UserFilters),
        ExportKind("users_xlsx", "users:read", UserFilters),
        ExportKind("audit_csv", "audit:read", AuditFilters),
        ExportKind("activity_pdf", "audit:read", ActivityFilters),
    )
}
KIND_NAMES = tuple(KINDS)


def _invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": field, "location": "body", "message": message, "type": kind}])


def get_kind(name: object) -> ExportKind:
    """The kind called `name`; ValidationFailed naming `kind` otherwise."""
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise _invalid("kind", _("kind must be one of %(kinds)s.", kinds=", ".join(KIND_NAMES)), "enum")
    return kind


def kind_title(name: str) -> str:
    """A kind in words (its renderer's title), in English as stored (a notification's parameter, translated where
    it is shown)."""
    renderer = RENDERERS.get(name)
    return renderer.title if renderer else name


def kind_label(name: str) -> str:
    """A kind in words for people ("Users (CSV)"), in the reader's language."""
    return _(kind_title(name))


def validate_filters(kind: ExportKind, filters: Any) -> dict[str, Any]:
    """`filters` checked against the kind's model, as JSON (dates as YYYY-MM-DD); each bad
    field named `filters.<name>`."""
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise _invalid("filters", _("filters must be an object."), "dict_type")
    try:
        model = kind.filters.model_validate(filters)
    except ValidationError as error:
        whole = getattr(kind.filters, "RANGE_FIELD", None)
        errors = [
            {
                "field": ".".join(["filters", *(str(part) for part in item["loc"] or filter(None, [whole]))]),
                "location": "body",
                "message": item["msg"].removeprefix("Value error, "),
                "type": item["type"],
            }
            for item in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ValidationFailed(_("The filters are not valid for this kind of export."), errors=errors) from None
    return model.model_dump(mode="json")
