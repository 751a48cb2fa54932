"""The dashboard's activity charts in Chromium, under the app's real CSP: an admin with 30 days
of stored statistics sees every chart drawn (bars, axis labels, legend) in the light and the
dark scheme, at 390 and 1280 px, without sideways scrolling, CSP violations or serious axe
findings; the dark scheme recolours the bars and the text; each chart's table opens. Screenshots
go to test-artifacts/dashboard-charts/."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.core.database import utcnow
from app.extensions import db
from app.stats.models import DailyStat
from tests.e2e.axe import add_axe, serious_violations
from tests.support import PASSWORD, PROJECT_ROOT

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("HEARTH_TEST_ARTIFACTS") or PROJECT_ROOT / "test-artifacts") / "dashboard-charts"
WIDTHS = (390, 1280)
CHARTS = ("signups", "sign-ins", "uploads", "jobs-emails", "jobs-uploads", "jobs-sync", "jobs-reports")

# Per chart: its drawn size, its bars, and the colours the theme gave them and its text.
CHART_JS = """
(stem) => {
  const chart = document.getElementById(stem);
  const svg = chart.querySelector('svg');
  const box = svg.getBoundingClientRect();
  const bar = svg.querySelector('rect.chart-tone--ok') || svg.querySelector('rect');
  const label = svg.querySelector('.chart__labels text');
  return {
    width: box.width, height: box.height, right: box.right,
    bars: svg.querySelectorAll('rect').length,
    barFill: bar ? getComputedStyle(bar).fill : null,
    labelFill: getComputedStyle(label).fill,
    background: getComputedStyle(document.documentElement).backgroundColor,
  };
}
"""
WIDTH_JS = "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"


@pytest.fixture()
def admin(app, make_user):
    """An administrator, and 30 days of rolled-up figures for every chart."""
    user = make_user(email="charts-admin@example.com", role="admin", email_verified_at=utcnow())
    today = utcnow().date()
    rows = []
    for n in range(1, 30):
        day = today - timedelta(days=n)
        rows += [
            DailyStat(day=day, metric="signups", dimension="", value=n % 7 + 1),
            DailyStat(day=day, metric="sign_ins", dimension="succeeded", value=20 + n % 5),
            DailyStat(day=day, metric="sign_ins", dimension="failed", value=n % 4),
            DailyStat(day=day, metric="sign_ins", dimension="locked", value=int(n % 9 == 0)),
            DailyStat(day=day, metric="uploads", dimension="document:ready", value=n % 6 + 2),
            DailyStat(day=day, metric="uploads", dimension="avatar:ready", value=n % 3),
            DailyStat(day=day, metric="jobs", dimension="emails:succeeded", value=40 + n),
            DailyStat(day=day, metric="jobs", dimension="emails:failed", value=n % 5),
            DailyStat(day=day, metric="jobs", dimension="uploads:succeeded", value=n % 8 + 1),
            DailyStat(day=day, metric="jobs", dimension="sync:succeeded", value=1440),
            DailyStat(day=day, metric="jobs", dimension="sync:revoked", value=n % 2),
            DailyStat(day=day, metric="jobs", dimension="reports:succeeded", value=n % 3),
        ]
    with app.app_context():
        db.session.add_all(rows)
        db.session.commit()
    return user


def _sign_in(page, email: str) -> None:
    page.goto("/auth/login?next=/admin/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/")


def test_the_charts_are_drawn_readable_and_fit_in_both_schemes(new_page, admin):
    seen: dict[str, dict] = {}
    for scheme in ("light", "dark"):
        page, events = new_page(color_scheme=scheme, viewport={"width": WIDTHS[-1], "height": 900})
        add_axe(page.context)
        _sign_in(page, admin.email)
        expect(page.get_by_role("heading", name="Activity, last 30 days")).to_be_visible()
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            widths = page.evaluate(WIDTH_JS)
            assert widths["scroll"] <= widths["inner"], f"{scheme} @{width}px scrolls sideways: {widths}"
            for stem in CHARTS:
                chart = page.locator(f"#chart-{stem}")
                expect(chart.get_by_role("img")).to_be_visible()
                drawn = page.evaluate(CHART_JS, f"chart-{stem}")
                assert drawn["bars"] >= 20, (stem, drawn)
                assert drawn["width"] > 250 and drawn["right"] <= width, (scheme, width, stem, drawn)
                assert drawn["height"] > 100, (scheme, width, stem, drawn)
                assert drawn["barFill"] not in (None, "none", "rgb(0, 0, 0)"), (stem, drawn)
            seen[scheme] = page.evaluate(CHART_JS, "chart-jobs-emails")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(ARTIFACTS / f"dashboard-{scheme}-{width}.png"), full_page=True, animations="disabled"
            )
            page.locator("#chart-jobs-emails").screenshot(path=str(ARTIFACTS / f"jobs-emails-{scheme}-{width}.png"))
        # The figures as a table: one row per day, the stored value in its column.
        signups = page.locator("#chart-signups")
        signups.locator("summary").click()
        table = signups.get_by_role("table")
        expect(table).to_be_visible()
        expect(table.locator("tbody tr")).to_have_count(30)
        csp_before_axe = len(events.csp_violations)
        found = serious_violations(page)
        assert found == [], "\n".join(map(str, found))
        del events.csp_violations[csp_before_axe:]  # axe's own blocked styles (tests/e2e/axe.py)
        events.assert_clean()
    # The dark scheme recolours bars and text (no colour is fixed in the markup).
    assert seen["light"]["barFill"] != seen["dark"]["barFill"]
    assert seen["light"]["labelFill"] != seen["dark"]["labelFill"]
    assert seen["light"]["background"] != seen["dark"]["background"]
