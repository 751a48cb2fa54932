"""The landing page."""

from __future__ import annotations

from flask import render_template

from app.core.http_cache import publicly_cacheable
from app.main import main_bp


@main_bp.get("/")
@publicly_cacheable(max_age=60)
def index() -> str:
    return render_template("main/index.html")
