"""The baseline: a bare Flask app doing the same work as the full stack's bench routes, and
as Hearth's `GET /api/v1/users` (the same SQL, the same JSON document; no authentication).

Plain Flask + Jinja + SQLAlchemy: no extensions, no hooks, no logging, no import of Hearth.
The engine gets the same options as Hearth's (pool size, pre-ping, recycle, connect timeout;
bench/run.py checks they match) and the same kind of thread-scoped ORM session that
Flask-SQLAlchemy gives Hearth, removed when the app context ends, so the only difference
left is Hearth's stack.

    gunicorn -c gunicorn.conf.py bench.bare_app:app
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, render_template, request
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from bench.workload import (
    BARE_ENGINE_OPTIONS,
    BARE_USERS_PATH,
    FORTUNES_PATH,
    JSON_PATH,
    JSON_PAYLOAD,
    TEMPLATES,
    USERS_PER_PAGE,
    fortune_rows,
    user_page,
)


def _database_url() -> str:
    url = os.environ["DATABASE_URL"]
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


engine = create_engine(_database_url(), **BARE_ENGINE_OPTIONS)
Session = scoped_session(sessionmaker(bind=engine))

app = Flask(__name__, template_folder=str(TEMPLATES))


@app.teardown_appcontext
def _remove_session(_exc: BaseException | None) -> None:
    Session.remove()


@app.get(FORTUNES_PATH)
def fortunes() -> str:
    return render_template("fortunes.html", fortunes=fortune_rows(Session))


@app.get(JSON_PATH)
def json_message():
    return jsonify(JSON_PAYLOAD)


@app.get(BARE_USERS_PATH.split("?")[0])
def users():
    page = request.args.get("page", 1, type=int)
    per_page = request.args.get("per_page", USERS_PER_PAGE, type=int)
    return jsonify(user_page(Session, page, per_page))
