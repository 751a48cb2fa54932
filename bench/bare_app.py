"""The baseline: a bare Flask app doing the same work as the full stack's bench routes.

Plain Flask + Jinja + SQLAlchemy: no extensions, no hooks, no logging, no import of Hearth.
The engine gets the same options as Hearth's (pool size, pre-ping, recycle, connect timeout;
bench/run.py checks they match) and the same kind of thread-scoped ORM session that
Flask-SQLAlchemy gives Hearth, removed when the app context ends, so the only difference
left is Hearth's stack.

    gunicorn -c gunicorn.conf.py bench.bare_app:app
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, render_template
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from bench.workload import BARE_ENGINE_OPTIONS, FORTUNES_PATH, JSON_PATH, JSON_PAYLOAD, TEMPLATES, fortune_rows


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
