"""Refusals that must leave a record although the caller raises right after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.core.unit_of_work import in_unit_of_work, unit_of_work


@contextmanager
def committed_before_raising() -> Iterator[None]:
    """An outermost unit of work of its own, for what a refusal records and must keep although
    the caller raises right after (a failed sign-in, a wrong password or code counted toward
    the lockout, a replayed token's revoked sign-in): it commits when the block ends.

    Refused inside a caller's unit: that unit would roll the record back with the error."""
    if in_unit_of_work():
        raise RuntimeError("a refusal's record must commit before the error: check before opening a unit of work")
    with unit_of_work():
        yield
