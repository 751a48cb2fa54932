"""The landing page."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.core.http_cache import publicly_cacheable

main_bp = Blueprint("main", __name__)


@main_bp.get("/")
@publicly_cacheable(max_age=60)
def index() -> str:
    return render_template("main/index.html")
