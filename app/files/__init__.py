"""`/files`: the signed-in user's file library and upload widget (hypermedia, not the JSON API)."""

from flask import Blueprint

files_bp = Blueprint("files", __name__, url_prefix="/files")

from app.files import routes  # noqa: E402,F401
