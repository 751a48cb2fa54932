"""What every admin view shares: the access check, permission-aware templates, partial vs
full-page rendering, confirmation of destructive actions, and post-action redirects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from flask import Blueprint, g, redirect, render_template, request
from flask_login import current_user
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from app.auth.guards import actor_permissions, require_actor
from app.core.redirects import safe_next
from app.core.templating import badge, is_htmx_request, time_tag
from app.core.toasts import toast
from app.errors import DomainError, PermissionDenied
from app.i18n import _
from app.jobs.management import JobState, job_state
from app.jobs.models import Job
from app.rbac.catalog import PERMISSIONS
from app.users.models import User

admin_bp = Blueprint("admin", __name__, url_prefix="/admin")

# Holding any of these opens /admin; each page and action then needs its own.
ADMIN_PERMISSIONS = frozenset(PERMISSIONS)
TEMPLATE_PERMISSIONS = "hearth_template_permissions"  # `g` attribute: what `can` answers from


def actor() -> User:
    return current_user._get_current_object()


def permissions() -> frozenset[str]:
    return actor_permissions(actor())


def can(permission: str) -> bool:
    """For templates: show a button only to people who may use it (the route checks again).

    A page asks this a dozen times (navigation, column, bulk actions): the signed-in user's
    permission set is looked up once per request and kept in `g` (as the route guard keeps its
    own), not resolved through `current_user` each time."""
    return permission in _held_permissions()


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Signed in and holding at least one admin permission; otherwise 403."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        user = require_actor()
        if not actor_permissions(user) & ADMIN_PERMISSIONS:
            raise PermissionDenied(_("The admin area needs an administrative permission."))
        return view(*args, **kwargs)

    return guarded


def is_admin() -> bool:
    """For the layout: does the signed-in user get an Admin link at all?"""
    return not _held_permissions().isdisjoint(ADMIN_PERMISSIONS)


def _held_permissions() -> frozenset[str]:
    """The signed-in user's permissions (none for a visitor), once per request (see `can`)."""
    held = g.get(TEMPLATE_PERMISSIONS)
    if held is None:
        held = permissions() if current_user.is_authenticated else frozenset()
        setattr(g, TEMPLATE_PERMISSIONS, held)
    return held


# Template globals rather than a context processor, which Flask would call on every render.
# Site-wide: the layout asks `is_admin`. (The uploads' words, `upload_kinds()` and
# `upload_statuses()`, are app.core.templating's globals.)
admin_bp.add_app_template_global(can)
admin_bp.add_app_template_global(is_admin)


def user_rows(
    users: Iterable[Any], labels: Any, can_write: bool, detail_url: Any, status_words: dict[str, str]
) -> Markup:
    """The rows of the admin users table (templates/admin/users/_list.html), written here rather
    than by Jinja: the same HTML, byte for byte (every value escaped as `{{ }}` would), for a
    third of the cost of a template loop (~40 values and two badges a row, 25–50 rows a page).
    `labels` is the table's words (`user_list_labels`, Markup), `detail_url` a `UrlPattern`."""
    rows = []
    for user in users:
        email, name = escape(user.email), escape(user.display_name)
        select = (
            f'<td class="select-cell"><input type="checkbox" name="user_ids" value="{escape(user.id)}"'
            f' aria-label="{labels.select_for.replace("__EMAIL__", email)}"></td>'
            if can_write
            else ""
        )
        status = badge(user.status, status_words.get(user.status))
        if not user.email_verified_at:
            status = f"{status} {badge('unverified', labels.unverified)}"
        rows.append(
            f'\n      <tr data-user="{email}">'
            f"\n        {select}"
            f'\n        <td><a href="{escape(detail_url.fill(user.id))}" class="truncate" title="{email}">{email}</a>'
            f'<span class="secondary-line below-lg">{name}</span></td>'
            f'\n        <td class="col-lg" data-label="{labels.name}">{name}</td>'
            f'\n        <td class="col-md" data-label="{labels.roles}">{escape(", ".join(user.role_names) or "—")}</td>'
            f'\n        <td data-label="{labels.status}">{status}</td>'
            f'\n        <td class="col-lg" data-label="{labels.joined}">{time_tag(user.created_at)}</td>'
            f'\n        <td class="col-md" data-label="{labels.last}">{time_tag(user.last_login_at)}</td>'
            "\n      </tr>\n    "
        )
    return Markup("".join(rows))  # noqa: S704  (every value is escaped above)


admin_bp.add_app_template_global(user_rows)


def render_list(page_template: str, partial_template: str, **context: Any) -> str:
    """The table alone for htmx swaps; the whole page otherwise (no JS, reloads, bookmarks)."""
    return render_template(partial_template if is_htmx_request() else page_template, **context)


def confirmed() -> bool:
    """Destructive actions carry confirmed=yes, set by the browser's confirm dialog
    (static/js/admin.js) or by the confirmation page shown to browsers without JavaScript."""
    return request.form.get("confirmed") == "yes"


def ask_confirmation(question: str, action_label: str, *, danger: bool = True) -> str:
    """A page repeating the submitted form with confirmed=yes: the no-JavaScript fallback."""
    back = safe_next(request.form.get("next") or request.referrer, "/admin/")
    fields = [
        (key, value) for key, value in request.form.items(multi=True) if key not in ("csrf_token", "confirmed", "next")
    ]
    return render_template(
        "admin/confirm.html",
        question=question,
        action_label=action_label,
        action=request.path,
        fields=[*fields, ("next", back)],
        back=back,
        danger=danger,
    )


def run_action(change: Callable[[], str], fallback: str) -> Response:
    """Run an admin action, tell its outcome (or the rule that refused it) as a toast, and go
    back. The service's unit of work already rolled a refused change back: nothing to undo."""
    try:
        message = change()
    except DomainError as error:
        toast(error.detail, "error")
    else:
        toast(message, "success")
    return redirect(safe_next(request.form.get("next") or request.referrer, fallback))


def query_args(**overrides: Any) -> dict[str, Any]:
    """The current query string with some values replaced (None drops a key): for sort and
    page links that keep the other filters."""
    args = {key: value for key, value in request.args.items() if value not in ("", None) and key != "fragment"}
    for key, value in overrides.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return args


def job_rows(jobs: Iterable[Job]) -> list[tuple[Job, JobState]]:
    """Each job with its one display state (app.jobs.management.job_state), for a table: every
    page that lists jobs shows them the same way."""
    return [(job, job_state(job)) for job in jobs]


def user_status_labels() -> dict[str, str]:
    """The words for an account's status (app.users.management.STATUSES), for filters, badges
    and counts alike."""
    return {"active": _("Active"), "disabled": _("Disabled"), "deleted": _("Deleted"), "all": _("All")}
