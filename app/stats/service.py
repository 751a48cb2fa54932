"""Daily statistics: roll a UTC day up into `daily_stats`, and read series back for the admin
dashboard and `GET /api/v1/admin/stats` (docs/architecture.md, "Daily statistics").

- `rollup_day(day)` computes every metric of one finished day and replaces that day's rows in
  one unit of work: running it again gives the same rows (idempotent), so the nightly job,
  its retries and `flask stats backfill` can all run it as often as they like.
- Today is never stored: a series that reaches today computes today's figures live (a few
  grouped counts), so the dashboard is current without a rollup per page view.
- `series(metric, since, until)` answers one value per day and dimension, the days with no row
  filled in: 0 for counts and bytes, None for durations (no job ran: there is no percentile).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

from app.cache.aside import CacheKey, bump, cached
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import ValidationFailed
from app.i18n import N_, _
from app.logging import get_logger
from app.stats import queries
from app.stats.repository import DailyStatRepository

log = get_logger("hearth.stats")
stats = DailyStatRepository()

# No day before this has data (the same bound as the activity report's filters).
EARLIEST_DAY = date(2000, 1, 1)
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
MAX_BACKFILL_DAYS = 3660
# The nightly run also rolls up any day of this many that was never rolled up (a night the
# workers were down): a missed night fills itself in, no backfill needed.
CATCH_UP_DAYS = 7

# The dashboard's charts: the last 30 days of these metrics. The stored part is cached until
# the next rollup (bumped on commit) or STORED_TTL; today's live part for LIVE_TTL.
DASHBOARD_DAYS = 30
DASHBOARD_METRICS = ("signups", "sign_ins", "uploads", "jobs")
STATS_NAMESPACE = "stats"
STORED_TTL = 3600
LIVE_TTL = 60


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # N_: translated where shown
    unit: str  # "count", "bytes" or "ms"
    dimension: str  # what the dimension names ("" for none), for the API document and the docs

    @property
    def fill(self) -> float | None:
        """The value of a day with no row: nothing counted is 0; a duration nobody measured is None."""
        return None if self.unit == "ms" else 0


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("signups", N_("Sign-ups"), "count", ""),
        Metric("active_users", N_("Active users"), "count", ""),
        Metric("sign_ins", N_("Sign-ins"), "count", "outcome"),
        Metric("uploads", N_("Uploads"), "count", "kind:status"),
        Metric("upload_bytes", N_("Uploaded bytes"), "bytes", "kind:status"),
        Metric("jobs", N_("Jobs finished"), "count", "queue:outcome"),
        Metric("job_duration_p50_ms", N_("Job duration, median (ms)"), "ms", "queue"),
        Metric("job_duration_p95_ms", N_("Job duration, 95th percentile (ms)"), "ms", "queue"),
        Metric("exports", N_("Exports"), "count", "kind"),
        Metric("webhook_deliveries", N_("Webhook deliveries"), "count", "outcome"),
    )
}


class _Day:
    """One day's reads, each run at most once however many metrics need it."""

    def __init__(self, day: date) -> None:
        self.day = day

    @cached_property
    def uploads(self) -> tuple[dict[str, int], dict[str, int]]:
        return queries.uploads(self.day)

    @cached_property
    def jobs(self) -> tuple[dict[str, int], dict[str, list[float]]]:
        return queries.jobs(self.day)

    def durations(self, fraction: float) -> dict[str, float]:
        found = {queue: queries.percentile(values, fraction) for queue, values in self.jobs[1].items()}
        return {queue: round(value, 1) for queue, value in found.items() if value is not None}


_COLLECT: dict[str, Callable[[_Day], dict[str, float]]] = {
    "signups": lambda d: {"": queries.signups(d.day)},
    "active_users": lambda d: {"": queries.active_users(d.day)},
    "sign_ins": lambda d: queries.sign_ins(d.day),
    "uploads": lambda d: d.uploads[0],
    "upload_bytes": lambda d: d.uploads[1],
    "jobs": lambda d: d.jobs[0],
    "job_duration_p50_ms": lambda d: d.durations(0.5),
    "job_duration_p95_ms": lambda d: d.durations(0.95),
    "exports": lambda d: queries.exports(d.day),
    "webhook_deliveries": lambda d: queries.webhook_deliveries_by_status(d.day),
}


def today() -> date:
    return utcnow().date()


def compute_day(day: date, metrics: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
    """Every figure of `day` (or only of `metrics`), computed from the source tables now:
    {metric: {dimension: value}}. Writes nothing."""
    reads = _Day(day)
    return {name: _COLLECT[name](reads) for name in (metrics or METRICS)}


def _rows(figures: dict[str, dict[str, float]]) -> list[tuple[str, str, float]]:
    """What a day stores: every non-zero figure, and the dimensionless ones even at 0 (so a
    rolled-up day with nothing in it still shows it was rolled up: repository.MARKER_METRIC)."""
    return [
        (metric, dimension, float(value))
        for metric, values in figures.items()
        for dimension, value in sorted(values.items())
        if value or dimension == ""
    ]


def rollup_day(day: date) -> int:
    """Compute `day` (a UTC day before today) and replace its rows, in one unit of work;
    returns the rows stored. Running it again replaces them with the same figures."""
    if day >= today():
        raise ValidationFailed(
            _("Only a finished day can be rolled up; today's figures are computed live."),
            errors=[_field_error("day", _("must be a day before today (UTC)."))],
        )
    with unit_of_work():
        stored = stats.replace_day(day, _rows(compute_day(day)))
        bump(STATS_NAMESPACE)  # after the commit: the dashboard reads the new rows
    log.info("stats_rolled_up", day=day.isoformat(), rows=stored)
    return stored


def backfill(days: int, until: date | None = None) -> list[tuple[date, int]]:
    """Roll up the `days` days ending with `until` (yesterday by default), oldest first, each in
    its own unit of work (a failure keeps the days already done); returns (day, rows) per day."""
    if not 1 <= days <= MAX_BACKFILL_DAYS:
        raise ValidationFailed(errors=[_field_error("days", _("must be from 1 to %(most)s.", most=MAX_BACKFILL_DAYS))])
    last = until or today() - timedelta(days=1)
    return [(day, rollup_day(day)) for day in _days(last - timedelta(days=days - 1), last)]


def nightly() -> dict[str, int]:
    """The nightly run: yesterday (again, if it was done: late changes are picked up), and any
    day of the CATCH_UP_DAYS before it never rolled up."""
    yesterday = today() - timedelta(days=1)
    since = yesterday - timedelta(days=CATCH_UP_DAYS)
    done = stats.rolled_up_days(since, yesterday - timedelta(days=1))
    missing = [day for day in _days(since, yesterday - timedelta(days=1)) if day not in done]
    rows = sum(rollup_day(day) for day in [*missing, yesterday])
    return {"days": len(missing) + 1, "rows": rows}


# Reading series --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One metric from `days[0]` to `days[-1]`: per dimension, one value per day."""

    metric: Metric
    days: list[date]
    values: dict[str, list[float | None]]
    live_day: date | None  # the day computed live (today), if the range reaches it

    def total(self, dimension: str) -> float:
        return sum(value or 0 for value in self.values[dimension])

    def day_totals(self) -> list[float]:
        """Per day, the sum over dimensions (what a stacked bar reaches)."""
        return [sum(values[i] or 0 for values in self.values.values()) for i in range(len(self.days))]


def _field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "location": "query", "message": message, "type": "value_error"}


def check_metric(metric: str) -> Metric:
    try:
        return METRICS[metric]
    except KeyError:
        message = _("must be one of %(choices)s.", choices=", ".join(METRICS))
        raise ValidationFailed(errors=[_field_error("metric", message)]) from None


def check_range(since: date, until: date) -> None:
    """A range of days the statistics can answer: from EARLIEST_DAY to today (UTC), start before
    end, at most MAX_RANGE_DAYS days; otherwise ValidationFailed naming `from` or `to`."""
    latest = today()
    bounds = _("must be a day from %(earliest)s to %(latest)s.", earliest=EARLIEST_DAY, latest=latest)
    errors = [
        _field_error(name, bounds)
        for name, day in (("from", since), ("to", until))
        if not EARLIEST_DAY <= day <= latest
    ]
    if not errors and since > until:
        errors.append(_field_error("to", _("must not be before `from`.")))
    if not errors and (until - since).days + 1 > MAX_RANGE_DAYS:
        errors.append(_field_error("to", _("the range can cover at most %(days)s days.", days=MAX_RANGE_DAYS)))
    if errors:
        raise ValidationFailed(errors=errors)


def resolve_range(since: date | None, until: date | None) -> tuple[date, date]:
    """The range asked for, with the defaults filled in (`until` today, `since` DEFAULT_RANGE_DAYS
    days ending with `until`, not before EARLIEST_DAY), then checked (`check_range`)."""
    until = until or today()
    if since is None:
        # Day arithmetic only on a plausible day: 0001-01-01 minus 29 days is an OverflowError.
        plausible = EARLIEST_DAY <= until <= today()
        since = max(EARLIEST_DAY, until - timedelta(days=DEFAULT_RANGE_DAYS - 1)) if plausible else EARLIEST_DAY
    check_range(since, until)
    return since, until


def series(metric: str, since: date, until: date) -> Series:
    """`metric` per day and dimension from `since` to `until` (both included): the stored rows,
    and today's figures live if the range reaches today. Validates its arguments."""
    spec = check_metric(metric)
    check_range(since, until)
    stored = stats.stored([metric], since, min(until, today() - timedelta(days=1)))
    live = {metric: compute_day(until, [metric])[metric]} if until == today() else None
    return _assemble(spec, since, until, stored, live)


def dashboard_series(days: int = DASHBOARD_DAYS) -> dict[str, Series]:
    """The dashboard's charts (DASHBOARD_METRICS over the last `days` days, today included),
    cheap to ask for on every page view: the stored rows are one cached query, today's
    figures a few counts cached for LIVE_TTL seconds."""
    until = today()
    since = until - timedelta(days=days - 1)
    stored = cached(
        CacheKey(STATS_NAMESPACE, f"stored:{since}:{until}:{','.join(DASHBOARD_METRICS)}"),
        lambda: stats.stored(DASHBOARD_METRICS, since, until - timedelta(days=1)),
        timeout=STORED_TTL,
    )
    live = cached(
        CacheKey(STATS_NAMESPACE, f"live:{until}:{','.join(DASHBOARD_METRICS)}"),
        lambda: compute_day(until, DASHBOARD_METRICS),
        timeout=LIVE_TTL,
    )
    return {name: _assemble(METRICS[name], since, until, stored, live) for name in DASHBOARD_METRICS}


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def _assemble(
    metric: Metric,
    since: date,
    until: date,
    stored: Iterable[tuple[date, str, str, float]],
    live: dict[str, dict[str, float]] | None,
) -> Series:
    days = _days(since, until)
    index = {day: n for n, day in enumerate(days)}
    values: dict[str, list[float | None]] = {}

    def put(day: date, dimension: str, value: float) -> None:
        row = values.setdefault(dimension, [metric.fill] * len(days))
        row[index[day]] = value if metric.unit == "ms" else int(value)

    for day, name, dimension, value in stored:
        if name == metric.name and day in index:
            put(day, dimension, value)
    live_day = until if live is not None else None
    if live_day is not None:
        for dimension, value in live.get(metric.name, {}).items():
            put(live_day, dimension, value)
    if metric.dimension == "" and "" not in values:
        values[""] = [metric.fill] * len(days)
    return Series(metric, days, dict(sorted(values.items())), live_day)
