"""Server-side records of browser sessions, and "keep me signed in" bound to them.

The cookie session carries `sid`, the id of a `user_sessions` row. Each authenticated browser
request checks that row: revoked (sign-out, "revoke" on the account page, sign out
everywhere), idle longer than SESSION_IDLE_MINUTES, or past its `expires_at` (sign-in +
SESSION_ABSOLUTE_HOURS) all end the session. `last_seen_at` is written at most once a minute.

Remember-me is Hearth's own cookie (named by REMEMBER_COOKIE_NAME), never Flask-Login's, whose
value is only the signed `id:epoch` and so outlives any sign-out of one browser. Hearth's
carries 256 random bits whose SHA-256 names a `remember_tokens` row, tied to the session it
last started. Ending that session on purpose (sign-out, revocation on /account/, sign out
everywhere, a password change, disabling) or by the absolute limit revokes the row, and a
copied cookie is then anonymous and cleared. When only the idle limit ended the session, the
cookie starts a new recorded session, bounded by the row's own expiry (REMEMBER_COOKIE_DURATION
from the password sign-in), and the token is rotated.

Impersonation ("view as", app.auth.impersonation): the browser is bound to a record of the
viewed user whose `impersonator_id` names the administrator; the administrator's own `sid` waits
in the cookie session (IMPERSONATOR_SID). Every request of such a session is read-only (any
unsafe method but "Stop" and sign-out is refused with 403) and carries the administrator's id
in its log lines; when it ends (Stop, sign-out, the time box, a revocation) the browser is back
in the administrator's own session if that is still live. All of it reads the record already
loaded with the user: a normal session pays one attribute check.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from app.audit.service import record
from app.auth import impersonation
from app.auth.emailed_tokens import token_hash
from app.auth.models import RememberToken, UserSession
from app.auth.repository import RememberTokenRepository, UserSessionRepository
from app.core.cookie_session import refresh_session_cookie
from app.core.database import utcnow
from app.core.net import client_address
from app.core.unit_of_work import unit_of_work
from app.extensions import login_manager
from app.i18n import _, ngettext
from app.logging import bind_impersonator
from app.pipeline import add_browser_hooks
from app.users.models import User
from app.users.service import load_principal, load_user

SESSION_KEY = "sid"
TOUCH_EVERY = timedelta(seconds=60)
# Paths whose requests never carry a browser sign-in (the API has no session at all).
# Browser paths with no session to check (the pipeline never calls browser hooks for /api/).
UNTRACKED_PREFIXES = ("/static/", "/health/")
# After an idle gap, several requests of one browser (tabs, a page and its htmx calls) can
# arrive with the same remember token; the first rotates it. For this long the old token is
# that browser's own race, not a copy: those requests stay anonymous but keep the cookie.
ROTATION_GRACE = timedelta(seconds=30)
REMEMBER_TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
PENDING_COOKIE = "hearth_remember_cookie"  # `g` attribute: what to send back for the cookie
CLEAR = "clear"
LOADED_RECORD = "hearth_session_record"  # `g` attribute: this request's (UserSession, User) row
PASSIVE_ATTR = "__hearth_passive__"  # on a view: its requests are not the user's activity
# Cookie session, while an administrator views the site as someone (app.auth.impersonation):
# the administrator's own session record, which the browser returns to afterwards.
IMPERSONATOR_SID = "impersonator_sid"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a browser viewing as someone may still POST: "Stop", and signing out (which stops first).
IMPERSONATION_STOP_ENDPOINT = "admin.stop_impersonation"
SIGN_OUT_ENDPOINT = "auth.logout"

sessions = UserSessionRepository()
remember_tokens = RememberTokenRepository()


def _settings():
    return current_app.extensions["hearth.settings"]


def _idle_limit() -> timedelta:
    return timedelta(minutes=_settings().session_idle_minutes)


def _new_session_row(
    user_id: int, bound: datetime | None = None, authenticated_at: datetime | None = None
) -> UserSession:
    now = utcnow()
    expires_at = now + timedelta(hours=_settings().session_absolute_hours)
    row = UserSession(
        id=secrets.token_urlsafe(32),
        user_id=user_id,
        user_agent=request.user_agent.string[:300],
        ip=client_address(),
        created_at=now,
        last_seen_at=now,
        expires_at=min(expires_at, bound) if bound is not None else expires_at,
        authenticated_at=authenticated_at,
    )
    return sessions.add(row)


def _bind(row: UserSession) -> None:
    session[SESSION_KEY] = row.id
    session.permanent = True


def start_session(user_id: int, fresh: bool = True) -> UserSession:
    """Record a new signed-in browser for `user_id` (in the caller's unit of work) and bind it
    to the cookie session. `fresh`: the person just proved who they are (a password, with the
    second factor if they have one), which step-up (app.auth.freshness) accepts for a while."""
    with unit_of_work():
        row = _new_session_row(user_id, authenticated_at=utcnow() if fresh else None)
    _bind(row)
    return row


def begin_browser_sign_in(user: User, remember: bool = False, fresh: bool = True) -> None:
    """Sign `user` in on this browser with a fresh cookie session and a new session record;
    with `remember`, also a remember-me token bound to that record. `fresh`: see `start_session`
    (False for an emailed link, which proves the mailbox, not the person).

    Clearing first means nothing from before (an attacker-planted session) survives.
    """
    with unit_of_work():
        session.clear()
        login_user(user)  # never remember=True: Flask-Login's own cookie is not used (module docstring)
        row = start_session(user.id, fresh=fresh)
        if remember:
            _issue_remember_token(user.id, row)
        elif _presented_remember_token() is not None:
            _forget_remember_cookie()  # whatever this browser still carries belongs to an ended sign-in


def _issue_remember_token(user_id: int, row: UserSession) -> None:
    raw = secrets.token_urlsafe(32)  # 256 bits
    now = utcnow()
    with unit_of_work() as orm_session:
        orm_session.flush()  # the session row first: no relationship() tells the flush that order
        token = remember_tokens.add(
            RememberToken(
                user_id=user_id,
                session_id=row.id,
                token_hash=token_hash(raw),
                created_at=now,
                expires_at=now + current_app.config["REMEMBER_COOKIE_DURATION"],
            )
        )
    _send_remember_cookie(raw, token.expires_at)


def end_session(user_id: int) -> None:
    """Sign-out of `user_id`: audited, this browser's session record and remember-me token
    revoked (one unit of work), and the remember-me cookie dropped."""
    sid = session.get(SESSION_KEY)
    with unit_of_work():
        record("logout", actor_id=user_id, subject_id=user_id)
        if sid:
            now = utcnow()
            sessions.end(sid, now)
            remember_tokens.revoke_of_session(sid, now)
    _forget_remember_cookie()


def revoke_session(user_id: int, sid: str) -> bool:
    """Sign one of the user's browsers out (the account page): its session and remember-me,
    audited. False when `sid` is not a live session of the user."""
    now = utcnow()
    with unit_of_work():
        if not sessions.revoke_live(sid, now, user_id=user_id):
            return False
        remember_tokens.revoke_of_session(sid, now)
        record("session_revoked", actor_id=user_id, subject_id=user_id)
    return True


def revoke_all_sessions(user_id: int) -> None:
    """Every browser session and remember-me token of the user (sign out everywhere), an
    administrator viewing as them included (recorded as stopped)."""
    now = utcnow()
    with unit_of_work():
        _stop_impersonations_of(user_id)
        sessions.revoke_all_of(user_id, now)
        remember_tokens.revoke_all_of(user_id, now)


def revoke_other_sessions(user_id: int) -> None:
    """Every browser session and remember-me token of the user but this browser's own (when it
    is the user's), in the caller's unit of work."""
    record = current_record()
    keep = record.id if record is not None and record.user_id == user_id else None
    now = utcnow()
    with unit_of_work():
        _stop_impersonations_of(user_id)
        sessions.revoke_all_of(user_id, now, keep=keep)
        remember_tokens.revoke_all_of(user_id, now, keep_session=keep)


def _stop_impersonations_of(user_id: int) -> None:
    """End every impersonation of the user through app.auth.impersonation.stop, so each is
    recorded as stopped once, here, rather than revoked silently with the user's sessions."""
    for row in sessions.live_impersonations(user_id=user_id):
        impersonation.stop(row, "revoked")


def active_sessions(user_id: int) -> list[UserSession]:
    return sessions.live_of(user_id, utcnow())


def reached_absolute_limit(row: UserSession, now: datetime, idle_limit: timedelta) -> bool:
    """The session was still in use when its absolute limit came (rather than idle before)."""
    return row.expires_at <= now and row.last_seen_at + idle_limit >= row.expires_at


# Each browser request ------------------------------------------------------------------------


def load_session_user(user_id: str) -> User | None:
    """Flask-Login's user loader: a user id counts only in a session bound to a record (`sid`).

    Flask-Login also hands this loader the payload of its own remember-me cookie. Hearth never
    issues one, and one issued before server-side remember-me (`id:epoch`) must sign nobody in.

    The session record and its user come in one statement: both land in the ORM's identity
    map (held by `g` for the request: the map keeps only weak references), so `load_user`
    (which applies the account's rules) and `_session_is_live` (the record's) read them
    without another round trip.
    """
    sid = session.get(SESSION_KEY)
    if not sid:
        return None
    setattr(g, LOADED_RECORD, sessions.with_user(sid))
    return load_user(user_id)


def _enforce() -> None:
    """Before any browser view: end the session if its record says so; with no live session,
    let a valid remember-me token sign the browser in again."""
    if "HTTP_COOKIE" not in request.environ or request.path.startswith(UNTRACKED_PREFIXES):
        return  # no cookie: neither a session nor a remember-me token to check
    ended = False
    if "_user_id" in session and current_user.is_authenticated:
        if _session_is_live():
            return
        ended = True
    elif IMPERSONATOR_SID in session:
        _viewed_account_gone()  # the administrator is sent back (a redirect), or signed out
        ended = True
    # A background poll never resumes from remember-me (the user's next real request does).
    raw = None if _is_passive_request() else _presented_remember_token()
    if raw is not None and _resume_from_remember_token(raw):
        return
    if ended:
        flash(_("Your session has ended. Please sign in again."), "info")


def _session_is_live() -> bool:
    row = sessions.get(session.get(SESSION_KEY) or "")
    now = utcnow()
    idle_limit = _idle_limit()
    if (
        row is not None
        and row.user_id == current_user.id
        and row.revoked_at is None
        and row.expires_at > now
        and now - row.last_seen_at <= idle_limit
    ):
        if now - row.last_seen_at > TOUCH_EVERY and not _is_passive_request():
            with unit_of_work():
                row.last_seen_at = now
            # The cookie's expiry moves with the record's (app.core.cookie_session).
            refresh_session_cookie()
        if row.impersonator_id is not None:
            _impersonated_request(row)
        return True
    if row is not None and row.impersonator_id is not None and row.user_id == current_user.id:
        return _impersonation_over(row)
    if row is not None and row.revoked_at is None:
        with unit_of_work():
            row.revoked_at = now
            if reached_absolute_limit(row, now, idle_limit):
                # The absolute limit ends remember-me too; only an idle end lets it start anew.
                remember_tokens.revoke_of_session(row.id, now)
    _sign_browser_out()
    return False


# Impersonation ("view as") ------------------------------------------------------------------


def current_record() -> UserSession | None:
    """This browser's session record: the one loaded with its user for this request when it is
    still the bound one (no query), else looked up. None when no record is bound."""
    sid = session.get(SESSION_KEY)
    if not sid:
        return None
    loaded = g.get(LOADED_RECORD)
    if loaded is not None and loaded[0].id == sid:
        return loaded[0]
    return sessions.get(sid)


def begin_impersonation(admin: User, target: User, admin_permissions: frozenset[str]) -> UserSession:
    """Make this browser view the site as `target` (app.auth.impersonation.start decides whether
    `admin` may): bound to the impersonation's record, the administrator's own `sid` kept aside."""
    admin_sid = session.get(SESSION_KEY)
    row = impersonation.start(admin, target, admin_permissions, request.user_agent.string, client_address())
    session.clear()
    login_user(target)
    _bind(row)
    session[IMPERSONATOR_SID] = admin_sid
    return row


def end_impersonation(reason: str = "stopped") -> UserSession | None:
    """Stop viewing as someone: the impersonation ended (audited) and the browser back in the
    administrator's own session, or signed out when that has ended meanwhile. Returns the
    ended record (its `user_id` is who was viewed), or None when this browser was not
    viewing as anyone."""
    row = current_record()
    if row is None or row.impersonator_id is None:
        return None
    impersonation.stop(row, reason)
    _return_to_impersonator(row)
    return row


def current_impersonation() -> ImpersonationState | None:
    """For the layout's banner: whether this browser views the site as someone, and for how long
    still. Reads the record loaded with the user (no query)."""
    loaded = g.get(LOADED_RECORD)
    if loaded is None:
        return None
    row = loaded[0]
    if row.impersonator_id is None or row.revoked_at is not None or row.id != session.get(SESSION_KEY):
        return None
    return ImpersonationState(
        row.user_id, row.expires_at, max(1, math.ceil((row.expires_at - utcnow()).total_seconds() / 60))
    )


class ImpersonationState:
    """What the banner says: who is viewed, until when, minutes left (at least 1)."""

    __slots__ = ("ends_at", "minutes_left", "user_id")

    def __init__(self, user_id: int, ends_at: datetime, minutes_left: int) -> None:
        self.user_id, self.ends_at, self.minutes_left = user_id, ends_at, minutes_left


def _impersonated_request(row: UserSession) -> None:
    """A request of a live impersonation: logged with the administrator's id, and read-only."""
    bind_impersonator(row.impersonator_id, _settings().secret_key)
    if request.method in SAFE_METHODS or request.endpoint == IMPERSONATION_STOP_ENDPOINT:
        return
    if request.endpoint == SIGN_OUT_ENDPOINT:
        # Signing out stops first; the sign-out view then signs the administrator out.
        end_impersonation("signed_out")
        return
    raise impersonation.ReadOnly()


def _viewed_account_gone() -> None:
    """This browser views as someone the user loader no longer accepts: disabled, deleted or
    signed out everywhere (each revokes the impersonation's record with the rest). It ends as
    a revoked one does (`_impersonation_over`: audited, the administrator sent back), rather
    than leaving the administrator's browser anonymous with the impersonation never recorded
    as stopped. Returns only when the browser was signed out instead (the administrator's own
    session had ended too)."""
    row = current_record()
    if row is None or row.impersonator_id is None:
        _sign_browser_out()
        return
    _impersonation_over(row)


def _impersonation_over(row: UserSession) -> bool:
    """The impersonation bound to this browser has ended (time box, idle, or its record was
    revoked): audited (by whatever revoked it, else here), and the administrator is back in
    their own session, sent to the viewed user's admin page, since whatever this request meant
    to do was meant for that user."""
    # Revoked before its time box ran out: the user's sessions all ended (else the periodic
    # close_lapsed_impersonations revoked it after the box, or it simply ran out).
    signed_out = row.revoked_at is not None and row.revoked_at < row.expires_at
    impersonation.stop(row, "expired")  # recorded already, and a no-op, when it was revoked
    if not _return_to_impersonator(row):
        return False
    if signed_out:
        message = _(
            "Viewing as another user ended: their account was signed out everywhere (by them, "
            "or disabled or deleted). You are yourself again."
        )
    else:
        message = ngettext(
            "Viewing as another user ended (it lasts at most %(num)d minute): you are yourself again.",
            "Viewing as another user ended (it lasts at most %(num)d minutes): you are yourself again.",
            _settings().impersonation_minutes,
        )
    flash(message, "info")
    abort(redirect(url_for("admin.user_detail", user_id=row.user_id)))


def _return_to_impersonator(row: UserSession) -> bool:
    """Bind the browser to the administrator's own session again, if it is still theirs and
    live (its idle time does not count: the administrator was using this browser all along);
    otherwise sign the browser out. Whether the administrator is back."""
    admin_sid = session.get(IMPERSONATOR_SID)
    own = sessions.get(admin_sid) if isinstance(admin_sid, str) else None
    now = utcnow()
    admin = load_principal(row.impersonator_id) if row.impersonator_id is not None else None
    if (
        own is None
        or admin is None
        or not admin.is_active
        or own.user_id != admin.id
        or own.revoked_at is not None
        or own.expires_at <= now
    ):
        _sign_browser_out()
        return False
    with unit_of_work():
        own.last_seen_at = now
    session.clear()
    login_user(admin)
    _bind(own)
    return True


def passive_request(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that a page calls on its own (the notification bell's polling): its session
    is checked like any request's, but it is not activity: it never moves `last_seen_at` (an
    open tab still goes idle, SESSION_IDLE_MINUTES) and never starts a session from the
    remember-me cookie (the user's next real request does)."""
    setattr(view, PASSIVE_ATTR, True)
    return view


def _is_passive_request() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, PASSIVE_ATTR, False)


def _sign_browser_out() -> None:
    session.clear()
    logout_user()
    # logout_user() marks Flask-Login's remember cookie, which shares our cookie's name, for
    # deletion; whether ours goes is decided here (it may start the next session).
    session.pop("_remember", None)


def sign_browser_out() -> None:
    """Sign this browser out entirely: the session cookie emptied, the user unloaded and the
    remember-me cookie deleted (the records are the caller's: `end_session`, or a password
    change that has revoked them all)."""
    _sign_browser_out()
    _forget_remember_cookie()


class _RotatedElsewhere(Exception):
    """Another request of this browser rotated the remember-me token first."""


def _resume_from_remember_token(raw: str) -> bool:
    """Sign the browser in from its remember-me token: a new recorded session, the token rotated.
    A revoked, expired or unknown token is anonymous, and its cookie is cleared."""
    now = utcnow()
    digest = token_hash(raw)
    token = remember_tokens.find_by_hash(digest)
    if token is None:
        _refuse_unknown_token(digest, now)
        return False
    user = load_principal(token.user_id)
    previous = sessions.get(token.session_id)
    if (
        token.revoked_at is not None
        or token.expires_at <= now
        or user is None
        or not user.is_active
        or (previous is not None and reached_absolute_limit(previous, now, _idle_limit()))
    ):
        if token.revoked_at is None:
            with unit_of_work():
                token.revoked_at = now
        _forget_remember_cookie()
        return False
    fresh = secrets.token_urlsafe(32)
    try:
        with unit_of_work() as orm_session:
            row = _new_session_row(user.id, bound=token.expires_at)
            orm_session.flush()  # the row the token is bound to, before the update names it
            # Compare-and-set: of two requests racing with one token, only one starts a session.
            if not remember_tokens.rotate(token.id, digest, token_hash(fresh), row.id, now):
                raise _RotatedElsewhere()
            if previous is not None and previous.revoked_at is None:
                previous.revoked_at = now  # it ended when it went idle; this one replaces it
            record("signed_in_remembered", actor_id=user.id, subject_id=user.id)
            session.clear()
            login_user(user, fresh=False)
            _bind(row)
    except _RotatedElsewhere:
        return False  # the unit rolled this request's session row back
    _send_remember_cookie(fresh, token.expires_at)
    return True


def _refuse_unknown_token(digest: str, now: datetime) -> None:
    stale = remember_tokens.find_rotated_from(digest)
    if stale is not None and stale.revoked_at is None:
        if stale.rotated_at is not None and now - stale.rotated_at <= ROTATION_GRACE:
            return  # the browser's own racing request: anonymous, but the cookie it now has stays
        # A token rotated away long ago came back, so two copies exist and one is a thief's:
        # end that browser's remember-me and session (as reuse of a refresh token does).
        with unit_of_work():
            stale.revoked_at = now
            sessions.revoke_live(stale.session_id, now)
            record("remember_token_reused", subject_id=stale.user_id)
    _forget_remember_cookie()


# The remember-me cookie ----------------------------------------------------------------------


def _presented_remember_token() -> str | None:
    """This request's remember-me token, if it carries one that could be Hearth's."""
    raw = request.cookies.get(current_app.config["REMEMBER_COOKIE_NAME"])
    if raw is None or REMEMBER_TOKEN_FORMAT.fullmatch(raw):
        return raw
    # Anything else (an old `id:epoch|digest` cookie, garbage) is dropped without a lookup.
    _forget_remember_cookie()
    return None


def _send_remember_cookie(raw: str, expires_at: datetime) -> None:
    setattr(g, PENDING_COOKIE, (raw, expires_at))


def _forget_remember_cookie() -> None:
    setattr(g, PENDING_COOKIE, CLEAR)


def _write_remember_cookie(response: Response) -> Response:
    pending = g.pop(PENDING_COOKIE, None)
    if pending is None:
        return response
    config = current_app.config
    attributes = {
        "path": "/",
        "secure": config["REMEMBER_COOKIE_SECURE"],
        "httponly": config["REMEMBER_COOKIE_HTTPONLY"],
        "samesite": config["REMEMBER_COOKIE_SAMESITE"],
    }
    name = config["REMEMBER_COOKIE_NAME"]
    if pending == CLEAR:
        # With the attributes it was set with: browsers ignore a `__Host-` deletion that is not Secure.
        response.delete_cookie(name, **attributes)
    else:
        raw, expires_at = pending
        response.set_cookie(name, raw, expires=expires_at, **attributes)
    return response


def init_session_tracking(app: Flask) -> None:
    login_manager.user_loader(load_session_user)
    # Browser routes only (the API never reads cookies); the cookie writer runs before the
    # Cache-Control default, which then sees the Set-Cookie.
    add_browser_hooks(app, before=_enforce, after=_write_remember_cookie)
    # The banner of templates/base.html (a global, not a context processor: no cost per render).
    app.add_template_global(current_impersonation, "impersonation")
    # Flask-Login's after hook only ever deletes the remember cookie that `logout_user` marks;
    # `sign_browser_out` does that here. Left in, it would touch the session on every response,
    # and since Flask 3.1.3 any touch adds `Vary: Cookie` (a header parsed and rebuilt: ~12 µs).
    flask_login_hook = login_manager._update_remember_cookie
    app.after_request_funcs[None] = [hook for hook in app.after_request_funcs[None] if hook != flask_login_hook]
