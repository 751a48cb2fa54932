"""Browser sign-in and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from app.audit.service import record
from app.auth import auth_bp
from app.auth.forms import LoginForm
from app.auth.service import GENERIC_FAILURE, InvalidCredentials, authenticate
from app.auth.sessions import end_session, start_session
from app.core.ratelimit import rate_limited
from app.extensions import db


def safe_next(target: str | None) -> str:
    """Only same-site paths: no scheme, no host, no protocol-relative `//` or backslash tricks."""
    if not target:
        return url_for("main.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return url_for("main.index")
    return target


@auth_bp.route("/login", methods=["GET", "POST"])
@rate_limited("10 per minute", methods=["POST"])
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data or "", form.password.data or "", channel="browser")
        except InvalidCredentials:
            form.password.errors.append(GENERIC_FAILURE)
            return render_template("auth/login.html", form=form), 401
        # A fresh session at sign-in: nothing from before (an attacker-planted session) survives.
        session.clear()
        login_user(user, remember=bool(form.remember.data))
        start_session(user.id)
        db.session.commit()
        flash(f"Welcome back, {user.display_name}.", "success")
        return redirect(safe_next(request.args.get("next")))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@auth_bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        record("logout", actor_id=current_user.id, subject_id=current_user.id)
        end_session()
        db.session.commit()
    logout_user()
    session.clear()
    flash("You have been signed out.", "success")
    return redirect(url_for("main.index"))
