"""The baseline: a bare Flask app doing the same work as the full stack's bench routes, and
as Hearth's `GET /api/v1/users` (the same SQL, the same JSON document; no authentication),
and as Hearth's signed-in `/files/` and `/admin/users` (bench/pages.py: Hearth's session cookie
checked against its record in one statement, the same SQL, the same HTML).

Plain Flask + Jinja + SQLAlchemy: no extensions, no hooks, no logging, no import of Hearth.
The engine gets the same options as Hearth's (pool size, pre-ping, recycle, connect timeout;
bench/run.py checks they match) and the same kind of thread-scoped ORM session that
Flask-SQLAlchemy gives Hearth, removed when the app context ends, so the only difference
left is Hearth's stack.

    gunicorn -c gunicorn.conf.py bench.bare_app:app
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, redirect, render_template, request
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from bench.pages import BARE_ADMIN_USERS_PATH, BARE_FILES_PATH, LOGIN_PATH, BarePages, install_helpers
from bench.workload import (
    API_EMPTY_PATH,
    BARE_ENGINE_OPTIONS,
    BARE_USERS_PATH,
    EMPTY_PATH,
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
# The signed-in pages' badges, icons, times and sizes (bench/pages.py), as Hearth's are filters.
install_helpers(app)
# The signed-in pages read Hearth's session cookie (bench/pages.py): its secret, its idle limit.
# Not `app.secret_key`: that would make Flask open a cookie session on every route.
pages = BarePages(os.environ.get("SECRET_KEY", ""), int(os.environ.get("SESSION_IDLE_MINUTES", "120")))


@app.teardown_appcontext
def _remove_session(_exc: BaseException | None) -> None:
    Session.remove()


@app.get(FORTUNES_PATH)
def fortunes() -> str:
    return render_template("fortunes.html", fortunes=fortune_rows(Session))


@app.get(JSON_PATH)
def json_message():
    return jsonify(JSON_PAYLOAD)


@app.get(API_EMPTY_PATH, endpoint="api_empty")
@app.get(EMPTY_PATH)
def empty() -> tuple[str, int]:
    return "", 204


@app.get(BARE_USERS_PATH.split("?")[0])
def users():
    page = request.args.get("page", 1, type=int)
    per_page = request.args.get("per_page", USERS_PER_PAGE, type=int)
    return jsonify(user_page(Session, page, per_page))


@app.get(BARE_FILES_PATH)
def files_page():
    signed_in = pages.signed_in(Session, request.cookies)
    if signed_in is None:
        return redirect(LOGIN_PATH)
    user, csrf_token = signed_in
    context = pages.files(Session, user.id, request.args.get("page", 1, type=int))
    return render_template("pages/files.html", user=user, csrf_token=csrf_token, **context)


@app.get(BARE_ADMIN_USERS_PATH)
def admin_users_page():
    signed_in = pages.signed_in(Session, request.cookies)
    if signed_in is None:
        return redirect(LOGIN_PATH)
    user, csrf_token = signed_in
    context = pages.admin_users(Session, request.args.get("page", 1, type=int))
    return render_template("pages/admin_users.html", user=user, csrf_token=csrf_token, **context)
