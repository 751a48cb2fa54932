"""The browser's way through a sign-in with two factors.

After a correct password, an account with two-factor authentication is not signed in: the
cookie session holds only a *pending* sign-in (user id, session epoch, "keep me signed in",
where to go next, when it started), valid for PENDING_MINUTES, and `/auth/2fa` asks for the
second factor. `finish_browser_sign_in` then begins the real session, exactly as a password
sign-in without two-factor does. Passkey sign-in (app.auth.passkey_routes) finishes here too.
"""

from __future__ import annotations

import time
from typing import Any

from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response

from app.auth import service
from app.auth.session_records import begin_browser_sign_in
from app.core.redirects import safe_next
from app.core.toasts import toast
from app.i18n import _
from app.rbac.catalog import PERMISSIONS
from app.rbac.service import permissions_of
from app.users.models import User
from app.users.service import load_principal

PENDING_KEY = "hearth_pending_sign_in"
PENDING_MINUTES = 5
# Anyone holding an administrative permission lands in the admin area (app.admin.common).
STAFF_PERMISSIONS = frozenset(PERMISSIONS)


def landing(user: User, next_url: str | None = None) -> str:
    """Where `user` goes after signing in: `next_url` if it is a page on this site, else the
    admin area for staff (anyone holding an administrative permission), else their files."""
    staff = not permissions_of(user.id).isdisjoint(STAFF_PERMISSIONS)
    return safe_next(next_url, url_for("admin.index" if staff else "files.index"))


def start_pending(user: User, remember: bool, next_url: str | None) -> None:
    """The password was right; the second factor comes next. Nothing from before survives in
    the cookie session (as at any sign-in), and nobody is signed in yet."""
    session.clear()
    session[PENDING_KEY] = {
        "uid": user.id,
        "epoch": user.session_epoch,
        "remember": bool(remember),
        "next": next_url,
        "started": int(time.time()),
    }


def _pending() -> dict[str, Any] | None:
    state = session.get(PENDING_KEY)
    if not isinstance(state, dict) or not isinstance(state.get("uid"), int):
        return None
    if time.time() - int(state.get("started") or 0) > PENDING_MINUTES * 60:
        session.pop(PENDING_KEY, None)
        return None
    return state


def pending_user() -> User | None:
    """The user whose password this browser gave in the last PENDING_MINUTES, still active,
    with the same session epoch (no sign-out everywhere since) and still using two-factor."""
    state = _pending()
    if state is None:
        return None
    user = load_principal(state["uid"])
    if user is None or not user.is_active or user.session_epoch != state.get("epoch") or not user.two_factor_enabled:
        session.pop(PENDING_KEY, None)
        return None
    return user


def pending_next() -> str | None:
    state = _pending()
    return state.get("next") if state else None


def cancel_pending() -> None:
    session.pop(PENDING_KEY, None)


def finish_browser_sign_in(
    user: User, method: str, remember: bool | None = None, next_url: str | None = None
) -> Response:
    """Sign `user` in on this browser: the sign-in recorded (`login_succeeded` with `method`,
    `last_login_at`, this client's failures forgotten, a new-device notice), a fresh session
    (`begin_browser_sign_in(fresh=True)`), a welcome, and the redirect to the landing page.
    `remember` and `next_url` default to the pending sign-in's, if this browser has one for
    `user` (else: not remembered, `?next=`)."""
    state = _pending()
    if state is not None and state["uid"] == user.id:
        remember = bool(state.get("remember")) if remember is None else remember
        next_url = next_url or state.get("next")
    next_url = next_url or request.args.get("next")
    service.record_sign_in(user, "browser", request.user_agent.string, method=method)
    begin_browser_sign_in(user, remember=bool(remember), fresh=True)  # clears the pending state
    toast(_("Welcome back, %(name)s.", name=user.display_name), "success")
    return redirect(landing(user, next_url))
