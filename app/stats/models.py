"""The `daily_stats` table: one figure per UTC day, metric and dimension."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class DailyStat(db.Model):
    """One figure of one day: `metric` ("jobs") split by `dimension` ("emails:succeeded"; ''
    for a metric with no split). The key is the natural one, (day, metric, dimension): a day
    is rewritten as a whole by `app.stats.service.rollup_day`, never row by row."""

    __tablename__ = "daily_stats"
    # Series are read by metric over a range of days; the primary key (day first) serves the
    # rollup's "replace this day".
    __table_args__ = (Index("ix_daily_stats_metric_day", "metric", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(48), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(120), primary_key=True, default="")
    # Counts, bytes and milliseconds alike: a double holds integers exactly up to 2**53.
    value: Mapped[float] = mapped_column(Float, default=0)

    def __repr__(self) -> str:
        return f"<DailyStat {self.day} {self.metric}[{self.dimension}]={self.value}>"
