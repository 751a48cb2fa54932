"""Server-side records of browser sessions.

The cookie session carries `sid`, the id of a `user_sessions` row. Each authenticated browser
request checks that row: revoked (sign-out, "revoke" on the account page, sign out
everywhere), idle longer than SESSION_IDLE_MINUTES, or older than SESSION_ABSOLUTE_HOURS
all end the session. `last_seen_at` is written at most once a minute.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Flask, current_app, flash, request, session
from flask_login import current_user, login_user, logout_user, user_loaded_from_cookie
from sqlalchemy import select, update

from app.auth.models import UserSession
from app.core.database import utcnow
from app.core.net import client_address
from app.extensions import db

SESSION_KEY = "sid"
TOUCH_EVERY = timedelta(seconds=60)


def _settings():
    return current_app.extensions["hearth.settings"]


def start_session(user_id: int) -> UserSession:
    """Record a new signed-in browser for `user_id` and bind it to the cookie session."""
    now = utcnow()
    row = UserSession(
        id=secrets.token_urlsafe(32),
        user_id=user_id,
        user_agent=request.user_agent.string[:300],
        ip=client_address(),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=_settings().session_absolute_hours),
    )
    db.session.add(row)
    session[SESSION_KEY] = row.id
    session.permanent = True
    return row


def begin_browser_sign_in(user, remember: bool = False) -> None:
    """Sign `user` in on this browser with a fresh cookie session and a new session record.

    Clearing first means nothing from before (an attacker-planted session) survives.
    """
    session.clear()
    login_user(user, remember=remember)
    start_session(user.id)
    db.session.commit()


def end_session() -> None:
    sid = session.get(SESSION_KEY)
    if sid:
        db.session.execute(update(UserSession).where(UserSession.id == sid).values(revoked_at=utcnow()))


def revoke_session(user_id: int, sid: str) -> bool:
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.id == sid, UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount == 1


def revoke_all_sessions(user_id: int) -> None:
    db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def active_sessions(user_id: int) -> list[UserSession]:
    now = utcnow()
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None), UserSession.expires_at > now)
            .order_by(UserSession.last_seen_at.desc())
        )
    )


def _enforce() -> None:
    """End the browser session if its record says so (before any browser view runs)."""
    if request.path.startswith(("/api/", "/static/", "/health/")) or "_user_id" not in session:
        return
    if not current_user.is_authenticated:
        return
    row = db.session.get(UserSession, session.get(SESSION_KEY) or "")
    now = utcnow()
    idle_limit = timedelta(minutes=_settings().session_idle_minutes)
    if (
        row is None
        or row.user_id != current_user.id
        or row.revoked_at is not None
        or row.expires_at <= now
        or now - row.last_seen_at > idle_limit
    ):
        if row is not None and row.revoked_at is None:
            row.revoked_at = now
            db.session.commit()
        # Clear first: logout_user() then marks the remember-me cookie for deletion in the
        # fresh session (clearing afterwards would drop that mark and keep the cookie alive).
        session.clear()
        logout_user()
        flash("Your session has ended. Please sign in again.", "info")
        return
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()


def _on_remember_cookie(sender: Flask, user) -> None:
    """A remember-me cookie signed the user in again: that is a new session to record."""
    start_session(user.id)
    db.session.commit()


def init_session_tracking(app: Flask) -> None:
    app.before_request(_enforce)
    user_loaded_from_cookie.connect(_on_remember_cookie, app)
