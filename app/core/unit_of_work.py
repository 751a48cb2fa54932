"""One unit of work per business operation (docs/architecture.md §7).

Every service that writes wraps its changes in `unit_of_work()`. Units nest: a service that
calls another service which also opens one runs inside the caller's unit, and only the
outermost level commits. Any exception leaving a level rolls the whole unit back, once, at
the outermost level; a unit whose inner level failed is never committed, even if a caller
caught the error in between. So an audit row and the change it records commit together or
not at all, and views never commit or roll back.

Jobs queued in a unit (app.jobs.service.enqueue) are handed to huey after its commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from app.extensions import db

DEPTH_KEY = "hearth.unit_of_work.depth"
FAILED_KEY = "hearth.unit_of_work.failed"


class UnitOfWorkFailed(RuntimeError):
    """An inner level of the unit raised, a caller swallowed the error, and the outermost
    level was about to commit half a change: it was rolled back instead."""


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """Run the block as (part of) one unit of work on the request's session; see the module."""
    session = db.session()
    info = session.info
    depth = info.get(DEPTH_KEY, 0)
    info[DEPTH_KEY] = depth + 1
    try:
        yield session
    except BaseException:
        info[DEPTH_KEY] = depth
        if depth:
            info[FAILED_KEY] = True
        else:
            info.pop(FAILED_KEY, None)
            session.rollback()
        raise
    info[DEPTH_KEY] = depth
    if depth:
        return
    if info.pop(FAILED_KEY, False):
        session.rollback()
        raise UnitOfWorkFailed("a nested unit of work failed; nothing was committed")
    try:
        session.commit()
    except BaseException:  # the last flush failed (a constraint, a lost connection): same one path
        session.rollback()
        raise


class OutsideUnitOfWork(RuntimeError):
    """A write that only makes sense as part of a caller's unit (an audit row, a queued job)
    was made outside any: nothing would ever commit it."""


def require_unit_of_work(what: str) -> None:
    """Refuse `what` outside `unit_of_work()`, rather than let it vanish at teardown."""
    if not in_unit_of_work():
        raise OutsideUnitOfWork(f"{what} must be added inside unit_of_work(): outside one nothing commits it")


def in_unit_of_work() -> bool:
    """True inside `unit_of_work()` (for helpers that must not be called outside one)."""
    return db.session().info.get(DEPTH_KEY, 0) > 0
