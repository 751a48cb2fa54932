"""Cross-process invalidation for the embedded profile: one generation row in the database.

Without Redis there is no pub/sub bus, and every process (the web server, each `flask worker`,
a one-off `flask users set-password`) keeps its own L1 and L2. So each commit that invalidates
anything cached also bumps `cache_generation.generation`, in the same transaction as the
change; every process reads that one row once per request (or job, or CLI command: once per
app context) before its first cache read, and empties its L1 and L2 when the value moved.
A change committed by any process is therefore seen by the next request of every other.

The read costs 2–4 µs on SQLite (10–14 µs per request with the bookkeeping): it goes through
one plain `sqlite3` connection the process keeps open (autocommit, so it never pins an old
snapshot), not through a pooled SQLAlchemy connection (150–240 µs for checkout, statement and
return). A database without
another process to tell (in-memory SQLite) builds no watch at all; a PostgreSQL database
without Redis (development only) is read through the engine.

The value starts at a random 62-bit number whenever the row is written (migration 0008, or the
next bump should the row be gone), so a database re-created or emptied while processes run can
never come back to a value some process still remembers. A process adopts
the generation its own commit produced (when nobody else bumped in between) rather than
clearing its caches for its own change: its own invalidations already dropped what changed.

The production profile never builds a `GenerationWatch`: the Redis bus does this there.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable

from flask import g
from sqlalchemy import Connection, make_url, select

from app.cache.models import CacheGeneration
from app.core.database import upsert
from app.extensions import db

ROW_ID = 1
CHECKED_KEY = "_hearth_cache_generation_checked"
_table = CacheGeneration.__table__
_READ = select(_table.c.generation).where(_table.c.id == ROW_ID)
_READ_SQL = "SELECT generation FROM cache_generation WHERE id = 1"  # _READ, for a plain sqlite3 connection


def bump_generation(connection: Connection) -> int:
    """Move the generation on, inside the caller's transaction; returns the new value."""
    statement = (
        upsert(connection.dialect, _table)
        .values(id=ROW_ID, generation=secrets.randbits(62))
        .on_conflict_do_update(index_elements=[_table.c.id], set_={"generation": _table.c.generation + 1})
        .returning(_table.c.generation)
    )
    return connection.execute(statement).scalar_one()


class SQLiteGenerationReader:
    """Reads the generation through one `sqlite3` connection kept open by this process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __call__(self) -> int | None:
        with self._lock:
            if self._connection is None:
                # Autocommit: each read sees the latest commit. Shared by the process's threads
                # under the lock.
                self._connection = sqlite3.connect(self.path, timeout=15, isolation_level=None, check_same_thread=False)
            # fetchall steps the statement to its end, which ends SQLite's read transaction: a
            # half-read statement would keep one open and stop WAL checkpoints past it.
            rows = self._connection.execute(_READ_SQL).fetchall()
        return rows[0][0] if rows else None


def read_through_engine() -> int | None:
    with db.engine.connect() as connection:
        return connection.execute(_READ).scalar()


def generation_reader(database_url: str) -> Callable[[], int | None] | None:
    """How this process reads the generation of `database_url`; None when no other process
    can share the database (in-memory SQLite), so there is nothing to watch."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return read_through_engine
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
        return None
    return SQLiteGenerationReader(url.database)


class GenerationWatch:
    """One app's view of the generation: the last value seen, and how to empty its caches."""

    def __init__(self, read: Callable[[], int | None], clear_caches: Callable[[], None]) -> None:
        self.read = read
        self.clear_caches = clear_caches
        self.looked = False  # nothing seen yet: the first look always empties the caches
        self.known: int | None = None
        self._lock = threading.Lock()
        self.checks = 0
        self.clears = 0

    def sync(self) -> None:
        """Once per app context (request, job, command): empty the caches if another process
        invalidated something since the last look."""
        if g.get(CHECKED_KEY):
            return
        setattr(g, CHECKED_KEY, True)
        current = self.read()
        self.checks += 1
        with self._lock:
            if self.looked and current == self.known:
                return
            self.looked, self.known = True, current
        self.clear_caches()
        self.clears += 1

    def adopt(self, produced: int) -> None:
        """After this process committed a bump to `produced`: if nobody else bumped since our
        last look, its own invalidations are all there was to apply."""
        with self._lock:
            if self.looked and self.known == produced - 1:
                self.known = produced
