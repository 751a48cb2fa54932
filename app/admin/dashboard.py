"""`/admin`: the dashboard. Each panel shows only when the admin may see what it counts.

The activity charts (the last 30 days of sign-ups, sign-ins, uploads and job outcomes per
queue) are inline SVG drawn here and in the template: no script, nothing fetched, nothing the
CSP forbids. Their figures come from app.stats.service (stored rollups, today live, both
cached), and each chart has its figures as a table beside it for screen readers and anyone
who wants the numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from babel.dates import format_skeleton
from flask import render_template

from app.admin.common import admin_bp, admin_required, can, job_rows, user_status_labels
from app.exports.renderers.activity import nice_step
from app.i18n import _, _l, current_locale, format_date, format_number
from app.jobs import management as job_management
from app.jobs.management import STATUS_LABELS
from app.jobs.models import JobStatus
from app.jobs.queues import QUEUES
from app.stats import service as stats
from app.stats.service import Series
from app.uploads import service as uploads
from app.uploads.models import KIND_LABELS as UPLOAD_KIND_LABELS
from app.users import management as user_management

SIGNUP_WINDOW_DAYS = 7
# Either permission reads the statistics (as GET /api/v1/admin/stats).
STATS_PERMISSIONS = ("stats:read", "audit:read")

# Series colours are tones, not positions: "failed" is the same red on every chart. Each tone
# is a CSS class (static/css/hearth.css, "Dashboard charts") filling a bar and its legend swatch.
SIGN_IN_SERIES = (
    ("succeeded", _l("Signed in"), "ok"),
    ("remembered", _l("Remembered browser"), "info"),
    ("failed", _l("Wrong password or unknown address"), "warn"),
    ("locked", _l("Refused: locked"), "bad"),
    ("disabled", _l("Refused: disabled"), "muted"),
)
UPLOAD_TONES = {"avatar": "info", "document": "accent", "video": "muted"}
JOB_OUTCOMES = ((JobStatus.succeeded, "ok"), (JobStatus.failed, "bad"), (JobStatus.revoked, "muted"))


@admin_bp.get("/")
@admin_required
def index() -> str:
    context: dict = {"status_labels": STATUS_LABELS, "signup_days": SIGNUP_WINDOW_DAYS}
    if can("users:read"):
        context["users"] = user_management.counts_by_status()
        context["signups"] = user_management.signups_since(SIGNUP_WINDOW_DAYS)
        labels = user_status_labels()
        context["user_statuses"] = [(s, labels[s]) for s in user_management.STATUSES if s != "all"]
    if can("uploads:read_any"):
        context["uploads"], context["stored_bytes"] = uploads.totals_by_status()
    if can("jobs:read"):
        context["queues"] = job_management.overview()
        context["failures"] = job_rows(job_management.latest_failures())
    if any(can(permission) for permission in STATS_PERMISSIONS):
        context["charts"] = activity_charts(stats.dashboard_series())
        context["chart_days"] = stats.DASHBOARD_DAYS
    return render_template("admin/dashboard.html", **context)


@admin_bp.get("/queue-counts")
@admin_required
def queue_counts() -> str:
    """The dashboard's live per-queue panel (polled)."""
    if not can("jobs:read"):
        return ""
    return render_template("admin/_queue_counts.html", queues=job_management.overview(), status_labels=STATUS_LABELS)


# The charts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One series of a chart: its label, its CSS tone and a value per day."""

    label: str
    tone: str
    values: Sequence[int]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    tone: str
    title: str  # the hover text: "Mar 3 · Failed: 2"


@dataclass(frozen=True)
class Chart:
    """A stacked bar chart in SVG user units (one bar per day, a segment per series), with
    what the page says around it: title, summary sentence, legend and the table of figures."""

    key: str  # the element ids' stem
    title: str
    summary: str  # the picture in one sentence, for the SVG's description
    days: Sequence[str]  # the table's day labels
    lines: Sequence[Line]
    bars: Sequence[Bar]
    y_ticks: Sequence[tuple[float, str]]  # (y, label)
    x_labels: Sequence[tuple[float, str, str]]  # (x, label, text-anchor)
    live_note: str | None  # "today so far" when the last day is live
    width: int
    height: int
    left: int
    right: float
    bottom: float  # the baseline's y


CHART_WIDTH, CHART_HEIGHT = 480, 200
MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 8, 12, 28
# The left margin fits the longest value label ("41,760"): the template's 15-unit text is about
# 9 units per character, plus the gap to the axis.
MIN_MARGIN_LEFT, LABEL_CHAR_UNITS, LABEL_GAP = 28, 9, 10
MAX_X_LABELS = 5  # at 390 px a 480-unit chart is ~350 px wide: five day labels fit


def stacked_chart(key: str, title: str, days: Sequence[date], lines: Sequence[Line], live: bool) -> Chart:
    """`lines` stacked per day, scaled to a round maximum (four grid steps of 1, 2 or 5 times a
    power of ten, as the activity report's chart), with at most MAX_X_LABELS day labels."""
    plot_height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    baseline = MARGIN_TOP + plot_height
    totals = [sum(line.values[n] for line in lines) for n in range(len(days))]
    step = nice_step(max(totals, default=0) / 4)
    top_value = step * 4
    y_ticks = [(round(baseline - plot_height * n / 4, 2), format_number(step * n)) for n in range(5)]
    left = max(MIN_MARGIN_LEFT, LABEL_CHAR_UNITS * max(len(label) for _y, label in y_ticks) + LABEL_GAP)
    right = CHART_WIDTH - MARGIN_RIGHT
    slot = (right - left) / max(len(days), 1)
    locale = current_locale()
    short_days = [format_skeleton("MMMd", day, locale=locale) for day in days]
    bars: list[Bar] = []
    for n, day_label in enumerate(short_days):
        stacked = 0
        for line in lines:
            value = line.values[n]
            if not value:
                continue
            top = baseline - plot_height * (stacked + value) / top_value
            height = plot_height * value / top_value
            x = left + n * slot + slot * 0.15
            title_text = f"{day_label} · {line.label}: {format_number(value)}"
            bars.append(Bar(round(x, 2), round(top, 2), round(slot * 0.7, 2), round(height, 2), line.tone, title_text))
            stacked += value
    every = -(-len(days) // MAX_X_LABELS) or 1
    # Labelled from the last day back, so today always has its label, ending at the right edge
    # (centred under its bar it would be cut off); the others centred under their bars.
    x_labels = [
        (right, short_days[n], "end")
        if n == len(days) - 1
        else (round(left + n * slot + slot / 2, 2), short_days[n], "middle")
        for n in range(len(days) - 1, -1, -every)
    ]
    busiest = max(range(len(days)), key=lambda n: totals[n], default=None)
    total = sum(totals)
    if busiest is None or not total:
        summary = _("%(title)s, last %(days)s days: none.", title=title, days=len(days))
    else:
        summary = _(
            "%(title)s, last %(days)s days: %(total)s in all, most on %(day)s (%(most)s).",
            title=title,
            days=len(days),
            total=format_number(total),
            day=format_date(days[busiest]),
            most=format_number(totals[busiest]),
        )
    return Chart(
        key=key,
        title=title,
        summary=summary,
        days=[format_date(day) for day in days],
        lines=lines,
        bars=bars,
        y_ticks=y_ticks,
        x_labels=x_labels,
        live_note=_("The last day is today so far.") if live else None,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        left=left,
        right=right,
        bottom=baseline,
    )


def _counts(values: Sequence[float | None]) -> list[int]:
    return [int(value or 0) for value in values]


def _sum(series: Series, keep) -> list[int]:
    """Per day, the sum of the dimensions `keep(dimension)` accepts."""
    chosen = [values for dimension, values in series.values.items() if keep(dimension)]
    return [sum(int(values[n] or 0) for values in chosen) for n in range(len(series.days))]


def activity_charts(found: dict[str, Series]) -> list[Chart]:
    """The dashboard's charts from `stats.dashboard_series()`: sign-ups; sign-ins by outcome;
    uploads by kind; then one chart of job outcomes per queue."""
    signups, sign_ins, uploaded, jobs = found["signups"], found["sign_ins"], found["uploads"], found["jobs"]
    days = signups.days
    live = signups.live_day is not None
    title = _("Sign-ups")
    charts = [stacked_chart("signups", title, days, [Line(title, "accent", _counts(signups.values[""]))], live)]
    lines = [
        Line(str(label), tone, _counts(sign_ins.values.get(outcome, [0] * len(days))))
        for outcome, label, tone in SIGN_IN_SERIES
    ]
    charts.append(stacked_chart("sign-ins", _("Sign-ins"), days, lines, live))
    kinds = sorted({dimension.partition(":")[0] for dimension in uploaded.values} | set(UPLOAD_KIND_LABELS))
    lines = [
        Line(
            str(UPLOAD_KIND_LABELS.get(kind, kind.capitalize())),
            UPLOAD_TONES.get(kind, "muted"),
            _sum(uploaded, lambda dimension, kind=kind: dimension.partition(":")[0] == kind),
        )
        for kind in kinds
    ]
    charts.append(stacked_chart("uploads", _("Uploads"), days, lines, live))
    for queue in QUEUES:
        lines = [
            Line(str(STATUS_LABELS[outcome]), tone, _counts(jobs.values.get(f"{queue}:{outcome}", [0] * len(days))))
            for outcome, tone in JOB_OUTCOMES
        ]
        title = _("Jobs finished on %(queue)s", queue=queue)
        charts.append(stacked_chart(f"jobs-{queue}", title, days, lines, live))
    return charts
