"""One unit of work per business operation (docs/architecture.md §7).

Every service that writes wraps its changes in `unit_of_work()`. Units nest: a service that
calls another service which also opens one runs inside the caller's unit, and only the
outermost level commits. Any exception leaving a level rolls the whole unit back, once, at
the outermost level; a unit whose inner level failed is never committed, even if a caller
caught the error in between. So an audit row and the change it records commit together or
not at all, and views never commit or roll back.

Jobs queued in a unit (app.jobs.service.enqueue) are handed to huey after its commit;
`on_commit` does the same for any other effect outside the database (deleting a stored file
the committed rows no longer point at).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db
from app.logging import get_logger

DEPTH_KEY = "hearth.unit_of_work.depth"
FAILED_KEY = "hearth.unit_of_work.failed"
ON_COMMIT_KEY = "hearth.unit_of_work.on_commit"

log = get_logger("hearth.unit_of_work")


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
            _roll_back(session)
        raise
    info[DEPTH_KEY] = depth
    if depth:
        return
    if info.pop(FAILED_KEY, False):
        _roll_back(session)
        raise UnitOfWorkFailed("a nested unit of work failed; nothing was committed")
    try:
        session.commit()
    except BaseException:  # the last flush failed (a constraint, a lost connection): same one path
        _roll_back(session)
        raise


def _roll_back(session: Session) -> None:
    # A unit that wrote nothing has no transaction to roll back, so no after_rollback event:
    # its after-commit actions are dropped here, never left for the next unit's commit.
    session.info.pop(ON_COMMIT_KEY, None)
    session.rollback()


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


def on_commit(action: Callable[[], None]) -> None:
    """Run `action` once the current unit of work commits; never if it rolls back. For effects
    outside the database that must follow the change, not precede it. A failing action is
    logged: the change is committed, and the caller's sweep (if any) finishes the job."""
    require_unit_of_work("An after-commit action")
    session = db.session()
    if session.in_nested_transaction():
        # A savepoint rolled back would not drop it: the action would follow a change undone.
        raise RuntimeError("on_commit inside a savepoint (begin_nested) is not supported")
    session.info.setdefault(ON_COMMIT_KEY, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_on_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a released savepoint commits nothing yet
    for action in session.info.pop(ON_COMMIT_KEY, None) or ():
        try:
            action()
        except Exception:  # committed already: an effect failing afterwards cannot undo it
            log.exception("after_commit_action_failed")


@event.listens_for(Session, "after_rollback")
def _drop_on_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(ON_COMMIT_KEY, None)
