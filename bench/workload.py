"""The work both benchmarked apps do, shared so it is identical by construction.

* fortunes (TechEmpower "Fortunes"): read every row of `fortune`, add one at request time,
  sort by message, render `templates/fortunes.html` through Jinja with autoescaping.
* json (TechEmpower "JSON serialization"): `jsonify({"message": "Hello, World!"})`.

The `fortune` table lives on its own `MetaData`, never on Hearth's, so Alembic and the
product schema never see it; `bench/run.py` creates and seeds it in the bench database.
"""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

TEMPLATES = Path(__file__).resolve().parent / "templates"
FORTUNES_PATH = "/bench/fortunes"
# Under /api/ so the full stack applies its API-only middleware (CORS) as it would in production.
JSON_PATH = "/api/bench/json"

metadata = MetaData()
fortune = Table(
    "fortune",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("message", String(2048), nullable=False),
)

# The 12 classic TechEmpower fortunes; #11 proves that the template escapes HTML.
FORTUNES = [
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. \u2014 Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af"),
]
ADDED_AT_REQUEST_TIME = (0, "Additional fortune added at request time.")
JSON_PAYLOAD = {"message": "Hello, World!"}
# The bare app's engine options: a copy of Hearth's `app._engine_options` for PostgreSQL, so the
# bare app need not import Hearth (its workers restart as cheaply as a bare app's would).
# bench/run.py refuses to run when the two differ.
BARE_ENGINE_OPTIONS = {
    "pool_pre_ping": True,
    "pool_recycle": 1800,
    "pool_size": 10,
    "max_overflow": 10,
    "connect_args": {"connect_timeout": 5},
}

_SELECT_FORTUNES = select(fortune.c.id, fortune.c.message)
_BY_MESSAGE = itemgetter(1)


def fortune_rows(session: Session) -> list[tuple[int, str]]:
    """Every fortune plus one made now, sorted by message (the template escapes them)."""
    rows = [(row[0], row[1]) for row in session.execute(_SELECT_FORTUNES)]
    rows.append(ADDED_AT_REQUEST_TIME)
    rows.sort(key=_BY_MESSAGE)
    return rows


def seed(engine) -> None:
    """Create and fill the `fortune` table (idempotent)."""
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(fortune.delete())
        connection.execute(fortune.insert(), [{"id": i, "message": m} for i, m in FORTUNES])
