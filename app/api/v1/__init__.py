"""Version 1 of the JSON API."""

from flask import Blueprint

v1_bp = Blueprint("v1", __name__, url_prefix="/v1")

from app.api.v1 import admin, auth, me, status, uploads, users  # noqa: E402,F401  (routes register on import)
