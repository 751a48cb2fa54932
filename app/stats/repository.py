"""Reads and writes of `daily_stats`. Nothing here commits: app.stats.service's units of work do."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import delete, select, text

from app.core.repository import Repository
from app.stats.models import DailyStat

# Every day that was rolled up has this metric's row (stored even when 0): the marker that
# tells a day with nothing in it from a day never rolled up.
MARKER_METRIC = "signups"
# The first key of the PostgreSQL advisory locks on days being rolled up ("ST"); the second is the day.
ADVISORY_LOCK_SPACE = 0x5354


class DailyStatRepository(Repository[DailyStat]):
    model = DailyStat

    def replace_day(self, day: date, figures: Iterable[tuple[str, str, float]]) -> int:
        """Delete `day`'s rows and add (metric, dimension, value) for it; returns the rows added.

        Two rollups of one day at once (a backfill during the nightly run, a re-sent job) take
        turns: on PostgreSQL a lock on the day, held until the unit of work ends, makes the
        second wait and then replace what the first committed (without it both would insert
        and the second fail on the unique key); SQLite's DELETE takes its write lock already."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:space, :day)"),
                {"space": ADVISORY_LOCK_SPACE, "day": day.toordinal()},
            )
        self.session.execute(delete(DailyStat).where(DailyStat.day == day))
        rows = [
            DailyStat(day=day, metric=metric, dimension=dimension, value=value) for metric, dimension, value in figures
        ]
        self.session.add_all(rows)
        self.session.flush()
        return len(rows)

    def stored(self, metrics: Iterable[str], since: date, until: date) -> list[tuple[date, str, str, float]]:
        """(day, metric, dimension, value) of `metrics` from `since` to `until` inclusive: one query."""
        statement = (
            select(DailyStat.day, DailyStat.metric, DailyStat.dimension, DailyStat.value)
            .where(DailyStat.metric.in_(list(metrics)), DailyStat.day >= since, DailyStat.day <= until)
            .order_by(DailyStat.metric, DailyStat.day, DailyStat.dimension)
        )
        return [tuple(row) for row in self.session.execute(statement)]

    def rolled_up_days(self, since: date, until: date) -> set[date]:
        """The days from `since` to `until` that have been rolled up."""
        statement = select(DailyStat.day).where(
            DailyStat.metric == MARKER_METRIC, DailyStat.day >= since, DailyStat.day <= until
        )
        return set(self.session.scalars(statement))
