"""`activity_pdf`: what happened on the site over a range of days, as a printable A4 PDF.

Sign-ups and sign-ins (by outcome), uploads (count and bytes by kind and status), jobs per
queue and outcome and the most frequent job failures: each figure aggregated by the database
(app/exports/renderers/queries.py), laid out by templates/reports/activity.html and printed by
WeasyPrint (HTML and CSS to PDF, with Debian's Pango for text; the Makefile installs it). The
daily chart is an inline SVG computed here: no JavaScript, nothing fetched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, BinaryIO

from babel.dates import format_skeleton
from flask import render_template
from markupsafe import Markup

from app.exports.renderers import queries
from app.exports.renderers.base import RenderContext, owners_language
from app.i18n import _, _l, current_locale, format_date, format_datetime, format_filesize, format_number
from app.jobs.management import STATUS_LABELS as JOB_STATUS_LABELS
from app.jobs.models import JobStatus
from app.jobs.queues import QUEUES
from app.uploads.models import KIND_LABELS as UPLOAD_KIND_LABELS
from app.uploads.models import STATUS_LABELS as UPLOAD_STATUS_LABELS

TEMPLATE = "reports/activity.html"
STEPS = 7  # six figures read, then the PDF printed
ERROR_CHARS = 300  # a failure's text in the table (the admin's job page has the rest)

SIGN_IN_OUTCOMES: dict[str, Any] = {
    "login_succeeded": _l("Signed in with a password or a link"),
    "signed_in_remembered": _l("Signed in by a remembered browser"),
    "login_failed": _l("Wrong password or unknown address"),
    "login_refused_locked": _l("Refused: locked after wrong passwords"),
    "login_refused_disabled": _l("Refused: account disabled"),
}
JOB_STATUSES = (
    JobStatus.succeeded,
    JobStatus.failed,
    JobStatus.retrying,
    JobStatus.running,
    JobStatus.queued,
    JobStatus.revoked,
)


def render_activity_pdf(context: RenderContext, out: BinaryIO) -> None:
    # WeasyPrint takes about half a second to import (and pulls in Pango through cffi): only the
    # worker that prints a report pays for it, never the web process or a worker that never does.
    from weasyprint import HTML

    since, until = date.fromisoformat(context.filters["since"]), date.fromisoformat(context.filters["until"])
    if until < since:
        raise ValueError(f"the range ends ({until}) before it starts ({since})")
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        context.progress(done, STEPS)

    context.progress(0, STEPS)
    figures = read_figures(since, until, step)
    with owners_language(context.user_id):
        html = render_template(TEMPLATE, **report_context(figures, context))
    HTML(string=html, url_fetcher=_fetch_nothing).write_pdf(out)
    step()


def _fetch_nothing(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The report is self-contained: nothing is fetched (no file, no network), whatever its text says."""
    raise ValueError(f"activity reports fetch nothing ({url[:60]})")


@dataclass
class Figures:
    since: date
    until: date
    signups: dict[str, int] = field(default_factory=dict)  # 'YYYY-MM-DD' → count
    sign_ins: dict[str, int] = field(default_factory=dict)
    sign_in_outcomes: dict[str, int] = field(default_factory=dict)
    uploads: list[Any] = field(default_factory=list)  # (kind, status, count, bytes)
    jobs: list[Any] = field(default_factory=list)  # (queue, status, count)
    failures: list[Any] = field(default_factory=list)  # (task, error, count, last finished)


def read_figures(since: date, until: date, step: Any = lambda: None) -> Figures:
    figures = Figures(since, until)
    figures.signups = queries.signups_per_day(since, until)
    step()
    figures.sign_ins = queries.sign_ins_per_day(since, until)
    step()
    figures.sign_in_outcomes = queries.sign_ins_by_outcome(since, until)
    step()
    figures.uploads = queries.uploads_by_kind_and_status(since, until)
    step()
    figures.jobs = queries.jobs_by_queue_and_status(since, until)
    step()
    figures.failures = queries.top_failures(since, until)
    step()
    return figures


def report_context(figures: Figures, context: RenderContext) -> dict[str, Any]:
    """What the template shows, every number and date already in the owner's language."""
    days = [figures.since + timedelta(days=n) for n in range((figures.until - figures.since).days + 1)]
    signups = [figures.signups.get(day.isoformat(), 0) for day in days]
    sign_ins = [figures.sign_ins.get(day.isoformat(), 0) for day in days]
    period = _("%(since)s to %(until)s", since=format_date(figures.since), until=format_date(figures.until))
    title = _("Activity report")

    outcomes = [(label, figures.sign_in_outcomes.get(event, 0)) for event, label in SIGN_IN_OUTCOMES.items()]
    uploads = [
        {
            "kind": UPLOAD_KIND_LABELS.get(kind, kind),
            "status": UPLOAD_STATUS_LABELS.get(status, status),
            "count": format_number(count),
            "bytes": format_filesize(size),
        }
        for kind, status, count, size in figures.uploads
    ]
    per_queue: dict[str, dict[str, int]] = {name: {} for name in QUEUES}
    for queue, status, count in figures.jobs:
        per_queue.setdefault(queue, {})[status] = count
    jobs = [
        {
            "queue": queue,
            "counts": [format_number(counts.get(status, 0)) for status in JOB_STATUSES],
            "total": format_number(sum(counts.values())),
        }
        for queue, counts in per_queue.items()
    ]
    failures = [
        {
            "task": task,
            "error": _shorten(error or _("(no message)")),
            "count": format_number(count),
            "last": format_datetime(last, "short") if last else "—",
        }
        for task, error, count, last in figures.failures
    ]
    active_days = [
        {"day": format_date(day), "signups": format_number(up), "sign_ins": format_number(signed)}
        for day, up, signed in zip(days, signups, sign_ins, strict=True)
        if up or signed
    ]
    return {
        "lang": current_locale().language,
        "title": title,
        "period": period,
        "generated": format_datetime(context.generated_at, "long"),
        "totals": {
            "signups": format_number(sum(signups)),
            "sign_ins": format_number(sum(sign_ins)),
            "uploads": format_number(sum(row[2] for row in figures.uploads)),
            "upload_bytes": format_filesize(sum(row[3] for row in figures.uploads)),
            "jobs": format_number(sum(row[2] for row in figures.jobs)),
            "failed_jobs": format_number(sum(row[2] for row in figures.jobs if row[1] == JobStatus.failed)),
        },
        "outcomes": [(label, format_number(count)) for label, count in outcomes],
        "uploads": uploads,
        "job_statuses": [JOB_STATUS_LABELS[status] for status in JOB_STATUSES],
        "jobs": jobs,
        "failures": failures,
        "active_days": active_days,
        "chart": bar_chart(days, [signups, sign_ins]),
        "page_header": css_string(f"Hearth · {title} · {period}"),
        "page_footer": css_content(_("Page %(page)s of %(pages)s"), page="counter(page)", pages="counter(pages)"),
    }


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


# The chart ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int  # 0 sign-ups, 1 sign-ins: the template's colour
    value: int


@dataclass(frozen=True)
class Chart:
    """A grouped bar chart in SVG user units: one group per day, one bar per series."""

    width: int
    height: int
    left: int
    top: int
    bottom: float  # the baseline's y
    right: float
    bars: Sequence[Bar]
    y_ticks: Sequence[tuple[float, str]]  # (y, label)
    x_labels: Sequence[tuple[float, str]]  # (x of the label's centre, label)


CHART_WIDTH, CHART_HEIGHT = 720, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 8, 10, 28
MAX_X_LABELS = 8


def bar_chart(days: Sequence[date], series: Sequence[Sequence[int]]) -> Chart:
    """Bars for each day and series, scaled to a round maximum (four grid steps of 1, 2 or 5
    times a power of ten), with at most MAX_X_LABELS day labels, evenly spread."""
    plot_width = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    baseline = MARGIN_TOP + plot_height
    step = nice_step(max((max(values, default=0) for values in series), default=0) / 4)
    top_value = step * 4
    slot = plot_width / max(len(days), 1)
    bar_width = slot * 0.8 / max(len(series), 1)
    bars = []
    for index in range(len(days)):
        for number, values in enumerate(series):
            value = values[index]
            if not value:
                continue
            height = plot_height * value / top_value
            x = MARGIN_LEFT + index * slot + slot * 0.1 + number * bar_width
            bars.append(
                Bar(round(x, 2), round(baseline - height, 2), round(bar_width, 2), round(height, 2), number, value)
            )
    y_ticks = [(round(baseline - plot_height * n / 4, 2), format_number(step * n)) for n in range(5)]
    every = math.ceil(len(days) / MAX_X_LABELS) or 1
    x_labels = [
        (round(MARGIN_LEFT + index * slot + slot / 2, 2), format_skeleton("MMMd", day, locale=current_locale()))
        for index, day in enumerate(days)
        if index % every == 0
    ]
    return Chart(
        CHART_WIDTH,
        CHART_HEIGHT,
        MARGIN_LEFT,
        MARGIN_TOP,
        baseline,
        CHART_WIDTH - MARGIN_RIGHT,
        bars,
        y_ticks,
        x_labels,
    )


def nice_step(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … that is at least `raw` (and at least 1)."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


# CSS text for the page margins (printed by @page rules, which no HTML element reaches) -------------

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def css_string(text: str) -> Markup:
    """`text` as a CSS string literal, safe inside <style>: quotes and backslashes escaped,
    and "<" written as an escape so the text can never close the element."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\3c ").replace("\n", "\\a ").replace("\r", "")
    )
    return Markup(f'"{escaped}"')  # noqa: S704  (escaped for a CSS string above)


def css_content(template: str, **expressions: str) -> Markup:
    """A translated sentence with `%(name)s` placeholders as a CSS `content` value: its text as
    strings, each placeholder as the CSS expression given for it (e.g. counter(page))."""
    parts, position = [], 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > position:
            parts.append(css_string(template[position : match.start()]))
        parts.append(Markup(expressions[match.group(1)]))  # noqa: S704  (the caller's own CSS, e.g. counter(page))
        position = match.end()
    if position < len(template):
        parts.append(css_string(template[position:]))
    return Markup(" ").join(parts)
