"""`GET /api/v1/admin/stats`: the daily statistics as series (app.stats.service), for
integrators; the admin dashboard draws the same series."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.auth.guards import actor_permissions, require_actor
from app.errors import PermissionDenied
from app.i18n import _
from app.stats import service as stats
from app.stats.service import METRICS, Series

# Either permission reads the statistics: they are counts drawn from the audit trail, so an
# auditor sees them too; `stats:read` is for someone given the numbers and nothing else.
READ_PERMISSIONS = frozenset({"stats:read", "audit:read"})
MetricName = Literal[tuple(METRICS)]
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

METRIC_DESCRIPTION = "; ".join(
    f"`{metric.name}` ({metric.unit}{', by ' + metric.dimension if metric.dimension else ''})"
    for metric in METRICS.values()
)


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metric: MetricName = Field(description=METRIC_DESCRIPTION)
    from_: date | None = Field(
        default=None,
        alias="from",
        description=f"YYYY-MM-DD (UTC), inclusive; default {stats.DEFAULT_RANGE_DAYS - 1} days before `to`",
    )
    to: date | None = Field(
        default=None,
        description=f"YYYY-MM-DD (UTC), inclusive, today at the latest; default today. "
        f"At most {stats.MAX_RANGE_DAYS} days from `from`.",
    )

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _iso_day(cls, value: Any) -> Any:
        # Only the ISO form: pydantic would also take a Unix timestamp for a date.
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not DAY.fullmatch(value):
            raise ValueError(_("must be a day written YYYY-MM-DD."))
        return value


class StatsSeriesOut(BaseModel):
    dimension: str = Field(description="What the values count (empty for a metric with no split), e.g. `emails:failed`")
    values: list[float | None] = Field(description="One per day of `days`; null for a duration nothing was measured")
    total: float = Field(description="The sum of `values` (for durations, not a meaningful figure)")


class StatsOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True, populate_by_name=True)

    metric: str
    unit: Literal["count", "bytes", "ms"]
    dimension: str = Field(description="What the series' dimensions name, e.g. `queue:outcome` (empty: no split)")
    from_: date = Field(alias="from")
    to: date
    days: list[date]
    live_day: date | None = Field(description="The day computed live (today) rather than read from the rollups")
    series: list[StatsSeriesOut] = Field(description="One per dimension seen in the range, by dimension")


def _out(found: Series) -> StatsOut:
    return StatsOut(
        metric=found.metric.name,
        unit=found.metric.unit,
        dimension=found.metric.dimension,
        from_=found.days[0],
        to=found.days[-1],
        days=found.days,
        live_day=found.live_day,
        series=[
            StatsSeriesOut(dimension=dimension, values=values, total=found.total(dimension))
            for dimension, values in found.values.items()
        ],
    )


@api_operation(
    v1_bp,
    "/admin/stats",
    summary="Daily statistics",
    tags=("admin",),
    query=StatsQuery,
    response=StatsOut,
    auth=True,
    errors=(403,),
)
def admin_stats(query: StatsQuery) -> StatsOut:
    """One metric per UTC day and dimension, days without figures filled in (0; null for
    durations). Days before today come from the nightly rollup; today, when `to` reaches it, is
    computed live. Needs `stats:read` or `audit:read`. A bad day, an unknown metric or a range
    that is reversed, in the future or longer than 366 days is a 422 naming `from`, `to` or
    `metric`."""
    actor = require_actor()
    if actor_permissions(actor).isdisjoint(READ_PERMISSIONS):
        raise PermissionDenied(_("This needs the 'stats:read' or 'audit:read' permission."))
    since, until = stats.resolve_range(query.from_, query.to)
    return _out(stats.series(query.metric, since, until))
