"""The work both benchmarked apps do, shared so it is identical by construction.

* fortunes (TechEmpower "Fortunes"): read every row of `fortune`, add one at request time,
  sort by message, render `templates/fortunes.html` through Jinja with autoescaping.
* json (TechEmpower "JSON serialization"): `jsonify({"message": "Hello, World!"})`.
* users (the bare counterpart of Hearth's `GET /api/v1/users`): the same three statements
  Hearth's list needs (a count, one page of users in email order, the role names of those
  users) on a plain SQLAlchemy session, answered as the same JSON document
  (`{"items": [...], "meta": {...}}`, the same fields and formats).

The `fortune` table lives on its own `MetaData`, never on Hearth's, so Alembic and the
product schema never see it; `bench/run.py` creates and seeds it in the bench database. The
users tables below are a read-only description of Hearth's own (created by its migrations),
so the bare app can query them without importing Hearth.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from operator import itemgetter
from pathlib import Path

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import Session

TEMPLATES = Path(__file__).resolve().parent / "templates"
FORTUNES_PATH = "/bench/fortunes"
# Under /api/ so the full stack applies its API-only middleware (CORS) as it would in production.
JSON_PATH = "/api/bench/json"
# The empty handler (bench "pipeline"): what the request pipeline costs with no work behind it,
# on an API path (bearer-token rules: CORS, no CSRF, no cookie session) and a browser path.
API_EMPTY_PATH = "/api/bench/empty"
EMPTY_PATH = "/bench/empty"
USERS_PER_PAGE = 50
# Hearth's real endpoint (bearer token, users:read), and the bare app's counterpart.
USERS_PATH = f"/api/v1/users?per_page={USERS_PER_PAGE}"
BARE_USERS_PATH = f"/api/bench/users?per_page={USERS_PER_PAGE}"

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
    "pool_timeout": 10,
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


# The users list ------------------------------------------------------------------------------

hearth_tables = MetaData()  # never created from here: Hearth's migrations own these tables
users = Table(
    "users",
    hearth_tables,
    Column("id", Integer, primary_key=True),
    Column("email", String(320)),
    Column("display_name", String(120)),
    Column("is_active", Boolean),
    Column("email_verified_at", DateTime(timezone=True)),
    Column("last_login_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True)),
)
roles = Table("roles", hearth_tables, Column("id", Integer, primary_key=True), Column("name", String(64)))
user_roles = Table("user_roles", hearth_tables, Column("user_id", Integer), Column("role_id", Integer))

_VISIBLE = users.c.deleted_at.is_(None)  # the list's default filter: every user not deleted
_COUNT_USERS = select(func.count()).select_from(users).where(_VISIBLE)
_USER_PAGE = select(
    users.c.id,
    users.c.email,
    users.c.display_name,
    users.c.is_active,
    users.c.deleted_at,
    users.c.email_verified_at,
    users.c.created_at,
    users.c.last_login_at,
).where(_VISIBLE)
_ROLE_NAMES = select(user_roles.c.user_id, roles.c.name).join(roles, roles.c.id == user_roles.c.role_id)


def _iso(value: datetime | None) -> str | None:
    """A datetime as pydantic writes it (UTC as `Z`), so both apps answer the same text."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _status(row) -> str:
    if row.deleted_at is not None:
        return "deleted"
    return "active" if row.is_active else "disabled"


def user_page(session: Session, page: int = 1, per_page: int = USERS_PER_PAGE) -> dict:
    """One page of the user list, as Hearth's `GET /api/v1/users` answers it."""
    page, per_page = max(1, page), min(max(1, per_page), 100)
    total = session.execute(_COUNT_USERS).scalar_one()
    rows = session.execute(
        _USER_PAGE.order_by(users.c.email, users.c.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    names: dict[int, list[str]] = defaultdict(list)
    for user_id, name in session.execute(_ROLE_NAMES.where(user_roles.c.user_id.in_([row.id for row in rows]))):
        names[user_id].append(name)
    items = [
        {
            "id": row.id,
            "email": row.email,
            "display_name": row.display_name,
            "roles": sorted(names[row.id]),
            "status": _status(row),
            "email_verified_at": _iso(row.email_verified_at),
            "created_at": _iso(row.created_at),
            "last_login_at": _iso(row.last_login_at),
        }
        for row in rows
    ]
    pages = max(1, math.ceil(total / per_page))
    return {"items": items, "meta": {"page": page, "per_page": per_page, "total": total, "pages": pages}}
