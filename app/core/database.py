"""Database helpers shared by every feature: SQLite pragmas, UTC timestamps, time source."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo on the way back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use app.core.database.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        # PostgreSQL answers timezone-aware datetimes for `timestamptz`, which
        # process_result_value would hand back unchanged: skip the call per value (a listed
        # page reads hundreds).
        if dialect.name == "postgresql":
            return self.impl_instance.result_processor(dialect, coltype)
        return super().result_processor(dialect, coltype)


def enable_sqlite_wal(engine: Engine) -> None:
    """Make every SQLite connection of `engine` use WAL, foreign keys and a busy timeout.

    WAL lets the web process read while a huey worker writes.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: sqlite3.Connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()


_UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def upsert(dialect: Dialect, table: Table) -> Any:
    """An INSERT into `table` that takes `.on_conflict_do_update(...)`: both engines Hearth runs
    on (SQLite, PostgreSQL) have one, under the same name, in their own dialect module."""
    return _UPSERTS[dialect.name](table)
