"""Hearth's full stack for the benchmark: `create_app()` with every middleware, configured
from the environment (bench/run.py sets the production profile), plus a bench blueprint.

The bench routes live here, never under app/, so the product has no bench-only routes. They
are registered after `create_app`, like any feature blueprint, so the whole request pipeline
(Talisman, CORS on /api/*, request id, compression, body limit, rate limiting in Redis,
metrics, structured request log) applies to them, and they read through Hearth's `db` session.

    gunicorn -c gunicorn.conf.py bench.fullstack_app:app
"""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from app import create_app
from app.core.runtime import settle_after_startup
from app.extensions import db
from bench.workload import API_EMPTY_PATH, EMPTY_PATH, FORTUNES_PATH, JSON_PATH, JSON_PAYLOAD, TEMPLATES, fortune_rows

bench_bp = Blueprint("bench", __name__, template_folder=str(TEMPLATES))


@bench_bp.get(FORTUNES_PATH)
def fortunes() -> str:
    return render_template("fortunes.html", fortunes=fortune_rows(db.session))


@bench_bp.get(JSON_PATH)
def json_message():
    return jsonify(JSON_PAYLOAD)


@bench_bp.get(API_EMPTY_PATH, endpoint="api_empty")
@bench_bp.get(EMPTY_PATH)
def empty() -> tuple[str, int]:
    """No work at all: what is left is the request pipeline (bench "pipeline")."""
    return "", 204


app = create_app()
app.register_blueprint(bench_bp)
settle_after_startup()  # as wsgi.py does
