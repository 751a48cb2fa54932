"""The `/api/v1` blueprint every v1 module registers its routes on."""

from flask import Blueprint

v1_bp = Blueprint("v1", __name__, url_prefix="/v1")
