"""The notification centre in the browser: the bell in the layout (and its polled fragment),
`/notifications` (list, mark one or all read, open), `/account/notifications` (preferences) and
the one-click unsubscribe links of emails. Every action is a plain form POST; htmx only polls
the bell."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from app.auth.guards import login_required
from app.auth.session_records import passive_request
from app.core.http_cache import strong_etag
from app.core.redirects import same_site_path
from app.core.templating import HTMX_STOP_POLLING
from app.extensions import csrf
from app.i18n import _, format_number, gettext, locale_code, ngettext, translate_stored
from app.notifications import service
from app.notifications.catalogue import KINDS
from app.notifications.models import Notification

notifications_bp = Blueprint("notifications", __name__)

PER_PAGE = 20
POLL_SECONDS = 20
BELLS_KEY = "hearth.notification_bells"  # app.extensions: (count, language, root) -> Markup
MAX_KEPT_BELLS = 512
BELL_ICON = Markup(
    '<svg class="icon" aria-hidden="true" focusable="false" viewBox="0 0 16 16" width="20" height="20">'
    '<path d="M8 1.75a4 4 0 0 0-4 4v2.5L2.5 11v.75h11V11L12 8.25v-2.5a4 4 0 0 0-4-4z" fill="none" '
    'stroke="currentColor" stroke-width="1.5" stroke-linejoin="round"/>'
    '<path d="M6.25 13.25a1.75 1.75 0 0 0 3.5 0" fill="none" stroke="currentColor" stroke-width="1.5" '
    'stroke-linecap="round"/></svg>'
)


# The bell ---------------------------------------------------------------------------------------


def bell_label(count: int) -> str:
    """The bell's accessible name: "Notifications, 3 unread", or "Notifications"."""
    if not count:
        return gettext("Notifications")
    return ngettext(
        "Notifications, %(count)s unread", "Notifications, %(count)s unread", count, count=format_number(count)
    )


def bell_html(count: int) -> Markup:
    """The bell: a link to /notifications named with the unread count, polled by htmx every
    POLL_SECONDS (it replaces itself). Python, like ui.badge, and built once per (count,
    language, script root) per app: it is on every signed-in page."""
    kept = current_app.extensions.setdefault(BELLS_KEY, {})
    key = (count, locale_code(), request.script_root)
    bell = kept.get(key)
    if bell is None:
        bell = _build_bell(count)
        if len(kept) < MAX_KEPT_BELLS:
            kept[key] = bell
    return bell


def _build_bell(count: int) -> Markup:
    links = current_app.jinja_env.globals["url_for"]
    shown = "99+" if count > 99 else format_number(count)
    badge = f'<span class="nav-bell__count" aria-hidden="true">{escape(shown)}</span>' if count else ""
    return Markup(  # noqa: S704  (every value is escaped)
        f'<a href="{escape(links("notifications.index"))}" id="nav-bell" class="nav-bell" '
        f'aria-label="{escape(bell_label(count))}" hx-get="{escape(links("notifications.bell"))}" '
        f'hx-trigger="every {POLL_SECONDS}s" hx-swap="outerHTML">{BELL_ICON}{badge}</a>'
    )


@notifications_bp.app_template_global()
def notification_bell() -> Markup:
    """The signed-in user's bell, for base.html: the count comes from the per-user cache, so the
    page runs no statement for it (app.notifications.service.unread_state)."""
    return bell_html(service.unread_state(current_user.id).count)


@notifications_bp.get("/notifications/bell")
@passive_request
def bell() -> Response:
    """The bell alone, for htmx's polling: a conditional GET (ETag and Last-Modified), so a poll
    that finds nothing new costs a 304 and no query beyond the session check. `no-cache`, not
    the default `no-store`: the browser keeps the copy and revalidates it."""
    if not current_user.is_authenticated:
        return Response(status=HTMX_STOP_POLLING)
    state = service.unread_state(current_user.id)
    html = str(bell_html(state.count))
    response = Response(html, mimetype="text/html")
    response.set_etag(strong_etag(f"{current_user.id}\n{html}".encode()))
    if state.changed_at is not None:
        response.last_modified = state.changed_at
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


# The centre -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationView:
    """One notification as the page shows it: its words in the reader's language."""

    id: int
    kind: str
    title: str
    body: str
    created_at: datetime
    unread: bool
    has_link: bool


def _view(row: Notification) -> NotificationView:
    return NotificationView(
        id=row.id,
        kind=row.kind,
        title=translate_stored(row.title) or "",
        body=translate_stored(row.body) or "",
        created_at=row.created_at,
        unread=row.read_at is None,
        has_link=bool(row.link),
    )


def _page_number() -> int:
    number = request.values.get("page", 1, type=int) or 1
    return max(1, number)


@notifications_bp.get("/notifications")
@login_required
def index() -> str:
    page = service.list_notifications(current_user.id, False, _page_number(), PER_PAGE)
    unread = service.unread_state(current_user.id).count
    return render_template(
        "notifications/index.html", page=page, items=[_view(row) for row in page.items], unread=unread
    )


def _back_to_list() -> Response:
    page = _page_number()
    return redirect(url_for("notifications.index", page=page if page > 1 else None))


@notifications_bp.post("/notifications/<int:notification_id>/read")
@login_required
def mark_read(notification_id: int) -> Response:
    service.mark_read(current_user.id, notification_id)
    return _back_to_list()


@notifications_bp.post("/notifications/read-all")
@login_required
def mark_all_read() -> Response:
    count = service.mark_all_read(current_user.id)
    if count:
        flash(ngettext("%(num)s notification marked read.", "%(num)s notifications marked read.", count), "success")
    return _back_to_list()


@notifications_bp.post("/notifications/<int:notification_id>/open")
@login_required
def open_notification(notification_id: int) -> Response:
    """Mark a notification read and follow its link (a repeat changes nothing more). A POST,
    with the CSRF token: a GET would be marked read by any prefetch or mail-link scanner."""
    row = service.mark_read(current_user.id, notification_id)
    target = same_site_path(row.link, request.host) if row.link else None
    if target is None:
        return redirect(url_for("notifications.index"))
    return redirect(request.script_root + target)


# Preferences ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceRow:
    name: str
    label: str
    security: bool
    in_app: bool
    email: bool


def _preference_rows() -> list[PreferenceRow]:
    chosen = service.preferences(current_user.id)
    return [
        PreferenceRow(
            spec.name,
            translate_stored(spec.label) or spec.label,
            spec.security,
            chosen[spec.name].in_app,
            chosen[spec.name].email,
        )
        for spec in KINDS
    ]


@notifications_bp.get("/account/notifications")
@login_required
def preferences() -> str:
    return render_template("notifications/preferences.html", rows=_preference_rows())


@notifications_bp.post("/account/notifications")
@login_required
def save_preferences() -> Response:
    """Checkboxes `<kind>:in_app` and `<kind>:email`; a security kind's email box is disabled
    (always on), so it is never read from the form."""
    form = request.form
    choices = {
        spec.name: service.ChannelChoice(
            in_app=f"{spec.name}:in_app" in form,
            email=spec.security or f"{spec.name}:email" in form,
        )
        for spec in KINDS
    }
    service.set_preferences(current_user._get_current_object(), choices)
    flash(_("Notification settings saved."), "success")
    return redirect(url_for("notifications.preferences"))


# One-click unsubscribe (RFC 8058) -------------------------------------------------------------


@notifications_bp.route("/notifications/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> str:
    """GET shows one button (a link scanner that follows the link changes nothing); POST, from
    that button or from a mail client's one-click (`List-Unsubscribe=One-Click`), switches the
    kind's email off. No sign-in and no CSRF token: the signed token is the authority, and all
    it can do is stop one kind of email."""
    if request.method == "GET":
        target = service.read_unsubscribe_token(token)
        return render_template("notifications/unsubscribe.html", token=token, target=target, done=False)
    target = service.unsubscribe(token)
    return render_template("notifications/unsubscribe.html", token=token, target=target, done=True)


csrf.exempt(unsubscribe)
