"""Tasks of the `sync` queue for the daily statistics (app.stats.service)."""

from __future__ import annotations

from app.i18n import N_
from app.stats import service as stats
from tasks.maintenance import periodic


@periodic(
    N_("daily at 00:20 UTC"),
    N_("Roll up yesterday's statistics for the admin dashboard, and any recent day never rolled up."),
    hour="0",
    minute="20",
)
def rollup_daily_stats() -> dict[str, int]:
    """Roll up yesterday's statistics for the admin dashboard, and any recent day never rolled up."""
    return stats.nightly()
