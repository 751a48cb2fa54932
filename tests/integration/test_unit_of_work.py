"""The one unit of work (app.core.unit_of_work): only the outermost level commits, any error
rolls the whole unit back, and a change and its audit row commit together or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.audit.service import record
from app.core.unit_of_work import UnitOfWorkFailed, in_unit_of_work, unit_of_work
from app.extensions import db


def _events(name: str) -> int:
    db.session.rollback()  # read what is committed, not what this session holds
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == name))


@pytest.fixture()
def commits(app):
    """How many times a session committed during the test."""
    seen: list[int] = []

    def count(_session) -> None:
        seen.append(1)

    event.listen(Session, "after_commit", count)
    yield seen
    event.remove(Session, "after_commit", count)


def test_only_the_outermost_level_commits(app, commits):
    with app.app_context():
        with unit_of_work():
            record("outer_change")
            with unit_of_work():
                record("inner_change")
                assert in_unit_of_work()
            assert commits == []  # the inner level ended without committing
        assert len(commits) == 1
        assert not in_unit_of_work()
        assert _events("outer_change") == _events("inner_change") == 1


def test_an_error_rolls_the_whole_unit_back_once(app, commits):
    with app.app_context():
        with pytest.raises(ValueError, match="boom"), unit_of_work():  # noqa: PT012  (the unit is the subject)
            record("before_the_error")
            with unit_of_work():
                record("inner_before_the_error")
                raise ValueError("boom")
        assert commits == []
        assert _events("before_the_error") == _events("inner_before_the_error") == 0
        with unit_of_work():  # the session is usable again
            record("after_the_error")
        assert _events("after_the_error") == 1


def test_a_failed_inner_level_is_never_committed_even_if_the_error_was_caught(app, commits):
    with app.app_context():
        with pytest.raises(UnitOfWorkFailed), unit_of_work():  # noqa: PT012  (the unit is the subject)
            record("half_a_change")
            try:
                with unit_of_work():
                    record("the_other_half")
                    raise LookupError("inner failure")
            except LookupError:
                pass  # a caller that swallows it must not get half a change committed
        assert commits == []
        assert _events("half_a_change") == _events("the_other_half") == 0
        with unit_of_work():  # and the next unit starts clean
            record("next_unit")
        assert _events("next_unit") == 1


def test_a_change_and_its_audit_row_commit_together_or_not_at_all(app, make_user):
    from app.users.models import User

    user_id = make_user(email="pair@example.com").id
    with app.app_context():
        with pytest.raises(RuntimeError, match="mail server"), unit_of_work():  # noqa: PT012
            db.session.get(User, user_id).display_name = "Renamed"
            record("user_renamed", subject_id=user_id)
            raise RuntimeError("the mail server is down")
        db.session.expire_all()
        assert db.session.get(User, user_id).display_name != "Renamed"
        assert _events("user_renamed") == 0


def test_a_commit_that_fails_is_rolled_back_and_the_session_stays_usable(app, make_user):
    from sqlalchemy.exc import IntegrityError

    from app.users.models import User

    make_user(email="taken@example.com")
    with app.app_context():
        with pytest.raises(IntegrityError), unit_of_work() as session:  # noqa: PT012  (the commit is the subject)
            # No flush inside the unit: the unique email fails only at the final commit.
            session.add(User(email="taken@example.com", display_name="Twin", password_hash="x"))
            record("twin_added")
        with unit_of_work():  # no PendingRollbackError: the failed commit was rolled back
            record("after_a_failed_commit")
        assert _events("after_a_failed_commit") == 1
        assert _events("twin_added") == 0


def test_on_commit_actions_run_after_the_commit_and_never_after_a_rollback(app):
    from app.core.unit_of_work import OutsideUnitOfWork, on_commit

    ran: list[tuple[str, int]] = []
    with app.app_context():
        with unit_of_work():
            record("with_an_effect")
            on_commit(lambda: ran.append(("committed", _committed("with_an_effect"))))
            with unit_of_work():
                on_commit(lambda: ran.append(("inner", 0)))
            assert ran == []  # not at the inner level's end either
        # Run once the change is visible to every other connection.
        assert ran == [("committed", 1), ("inner", 0)]

        with pytest.raises(ValueError, match="undo"), unit_of_work():  # noqa: PT012
            on_commit(lambda: ran.append(("rolled back", 0)))
            raise ValueError("undo")
        with unit_of_work():
            record("next_unit")
        assert ("rolled back", 0) not in ran  # dropped with the rollback, not run by the next commit

        with unit_of_work():
            on_commit(lambda: 1 / 0)  # a failing effect is logged: the commit stands
            record("despite_a_failing_effect")
        assert _events("despite_a_failing_effect") == 1
        with pytest.raises(OutsideUnitOfWork):
            on_commit(lambda: None)
        # Inside a savepoint it is refused: a savepoint rolled back would not drop it.
        with unit_of_work() as session, session.begin_nested(), pytest.raises(RuntimeError, match="savepoint"):
            on_commit(lambda: None)


def _committed(name: str) -> int:
    """Committed rows of `name`, read on a connection of its own (inside an after-commit action)."""
    with db.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == name))
