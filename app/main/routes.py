"""The landing page."""

from __future__ import annotations

from flask import render_template

from app.main import main_bp


@main_bp.get("/")
def index() -> str:
    return render_template("main/index.html")
