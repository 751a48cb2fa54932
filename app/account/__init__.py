"""The signed-in user's own account page: profile, password, sessions and API sign-ins."""

from flask import Blueprint

account_bp = Blueprint("account", __name__, url_prefix="/account")

from app.account import routes  # noqa: E402,F401
