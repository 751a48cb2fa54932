"""Template globals (`asset_url` and `url_pattern` among them) and the one helper that says
whether a request came from htmx.

Links a page builds identically on every request (its navigation, its forms' actions, its
stylesheets) are built once per app and reused (`TemplateLinks`): a rule with no arguments
always builds the same path under the same script root, and a page has dozens of them. The
`url_for` templates call is that memo; Python code keeps Flask's own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from flask import Flask, current_app, has_request_context, request, url_for
from markupsafe import Markup, escape
from werkzeug.routing import IntegerConverter, UnicodeConverter

from app.core.assets import asset_url, init_assets
from app.core.http_cache import is_public_page
from app.i18n import (
    DEFAULT_LOCALE,
    current_locale,
    format_datetime,
    format_filesize,
    format_number,
    gettext,
    lazy_gettext,
    locale_code,
    relative_words,
    request_state,
    translate_stored,
)
from app.uploads import service as upload_service
from app.uploads.models import KIND_LABELS as UPLOAD_KIND_LABELS
from app.uploads.models import STATUS_LABELS as UPLOAD_STATUS_LABELS
from app.uploads.models import UploadStatus
from app.uploads.service import avatar_url
from app.version import __version__

HTMX_VERSION = "2.0.11"
PICO_VERSION = "2.1.1"
SWAGGER_UI_VERSION = "5.35.0"


# The status that tells htmx to stop polling (`hx-trigger="every …"`): a polled fragment answers
# it once there is nothing more to poll for (signed out, say).
HTMX_STOP_POLLING = 286


def is_htmx_request() -> bool:
    """True for requests htmx made (it sends `HX-Request: true`), but not for history restores."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def has_endpoint(endpoint: str) -> bool:
    """Lets the layout link to features only once their blueprint is registered."""
    return endpoint in current_app.view_functions


# Built in place of the row's value: a number every converter Hearth's routes use accepts
# (string, int, bounded int); a route whose URL happens to contain it elsewhere keeps url_for.
_MARKER = 1_987_654_321


class UrlPattern:
    """`url_for(endpoint, **{name: value})` for the many rows of a table: the route is built once
    and each value goes in through the route's own converter, so `pattern(value)` answers
    exactly what url_for would, for a string join instead of a route build per row (building
    is most of what a table row costs to render).

    Only for a route with `name` as its one variable under the default string or int
    converters; any other route is built by url_for every time, so the answer never differs.
    """

    __slots__ = ("_endpoint", "_name", "_prefix", "_suffix", "_to_url")

    def __init__(self, endpoint: str, name: str) -> None:
        self._endpoint, self._name = endpoint, name
        self._to_url = None
        rules = list(current_app.url_map.iter_rules(endpoint))
        # werkzeug keeps a rule's converters in `_converters`; without it, no shortcut.
        converter = getattr(rules[0], "_converters", {}).get(name) if len(rules) == 1 else None
        if rules and rules[0].arguments == {name} and _plain(converter):
            built = url_for(endpoint, **{name: _MARKER})
            marker = converter.to_url(_MARKER)
            if built.count(marker) == 1:
                self._prefix, _, self._suffix = built.partition(marker)
                self._to_url = converter.to_url

    def fill(self, value: Any) -> str:
        """The URL for `value`. Also the `fill` filter: `{{ urls.delete | fill(upload.id) }}`
        costs a direct call, where `{{ urls.delete(upload.id) }}` goes through Jinja's
        `Context.call` (about twice the time, for every row of a table)."""
        if self._to_url is None:
            return url_for(self._endpoint, **{self._name: value})
        return self._prefix + self._to_url(value) + self._suffix

    __call__ = fill


def _plain(converter: object) -> bool:
    """The default `<name>` and `<int:name>` converters: to_url is a pure function of the value."""
    if type(converter) is UnicodeConverter:
        return True
    return isinstance(converter, IntegerConverter) and not converter.fixed_digits


LINKS_KEY = "hearth.template_links"
# Links kept per app: far more than a site's rules and static files, so reaching it means
# something varies that should not (it is then built every time, never evicted).
MAX_KEPT_LINKS = 4096


class TemplateLinks:
    """Links built once per app and script root, then reused (module docstring).

    Only what cannot vary between requests is kept: `url_for(endpoint)` with no arguments,
    `asset_url(path)` unless static files may change under a running app (development), and
    `UrlPattern`s. Anything with values, a relative endpoint, no request, or an app whose URLs
    depend on more than the rule (URL defaults, host or subdomain matching) goes to Flask
    every time.
    """

    def __init__(self, app: Flask, *, assets_change: bool) -> None:
        self._app = app
        self._assets_change = assets_change
        self._kept: dict[tuple[str, ...], Any] = {}
        self._fixed: bool | None = None  # decided at first use: setup ends before requests

    def url_for(self, endpoint: str, **values: Any) -> str:
        if values or endpoint[:1] == ".":
            return self._app.url_for(endpoint, **values)
        root = self._script_root()
        if root is None:
            return self._app.url_for(endpoint)
        key = ("url", endpoint, root)
        url = self._kept.get(key)
        return url if url is not None else self._keep(key, self._app.url_for(endpoint))

    def asset_url(self, path: str) -> str:
        root = None if self._assets_change else self._script_root()
        if root is None:
            return asset_url(path)
        key = ("asset", path, root)
        url = self._kept.get(key)
        return url if url is not None else self._keep(key, asset_url(path))

    def pattern(self, endpoint: str, name: str) -> UrlPattern:
        root = self._script_root()
        if root is None:
            return UrlPattern(endpoint, name)
        key = ("pattern", endpoint, name, root)
        pattern = self._kept.get(key)
        return pattern if pattern is not None else self._keep(key, UrlPattern(endpoint, name))

    def _script_root(self) -> str | None:
        """This request's script root if links may be reused, else None."""
        if not has_request_context():
            return None
        if self._fixed is None:
            url_map = self._app.url_map
            self._fixed = not (
                url_map.host_matching
                or any(self._app.url_default_functions.values())
                or any(rule.subdomain for rule in url_map.iter_rules())
            )
        return request.script_root if self._fixed else None

    def _keep(self, key: tuple[str, ...], value: Any) -> Any:
        if len(self._kept) < MAX_KEPT_LINKS:
            self._kept[key] = value
        return value


def url_pattern(endpoint: str, name: str) -> UrlPattern:
    """For templates: `{% set detail = url_pattern('admin.user_detail', 'user_id') %}` before a
    loop, then `{{ detail | fill(user.id) }}` in it (see UrlPattern)."""
    return current_app.extensions[LINKS_KEY].pattern(endpoint, name)


# A status's tone picks its badge's colour and icon (`ui.badge` in templates/_ui.html).
STATUS_TONES: dict[str, str] = {
    **dict.fromkeys(("ready", "succeeded", "success", "active", "verified", "enabled", "done"), "success"),
    **dict.fromkeys(("pending", "queued", "scheduled", "running", "processing", "uploading"), "info"),
    **dict.fromkeys(("retrying", "unverified", "locked", "warning"), "warning"),
    **dict.fromkeys(("failed", "rejected", "dead", "error"), "danger"),
}


def status_tone(status: object) -> str:
    """The badge tone of a status: success, info, warning, danger, or neutral for the rest
    (disabled, deleted, revoked, cancelled, anything unknown)."""
    if status is None:
        return "neutral"
    return STATUS_TONES.get(status) or STATUS_TONES.get(str(status).lower(), "neutral")


# UI components (templates/_ui.html exports them as `ui.badge`, `ui.icon`, `ui.toast`): Python,
# not macros, because a table renders one per row and a macro call costs ten times more.
# Icons are 16×16, drawn in currentColor, decorative (the words beside them say it all).
_ICON_PATHS = {
    "success": '<path d="M3.5 8.5l3 3 6-7" fill="none" stroke="currentColor" stroke-width="2" '
    'stroke-linecap="round" stroke-linejoin="round"/>',
    "info": '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.75"/>'
    '<path d="M8 4.75V8l2.25 1.5" fill="none" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
    "warning": '<path d="M8 2L1.5 13.5h13z" fill="none" stroke="currentColor" stroke-width="1.6" '
    'stroke-linejoin="round"/><path d="M8 6.5v3.25M8 11.6v.1" stroke="currentColor" stroke-width="1.75" '
    'stroke-linecap="round"/>',
    "danger": '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.75"/>'
    '<path d="M5.75 5.75l4.5 4.5m0-4.5l-4.5 4.5" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
    "neutral": '<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.75"/>'
    '<path d="M5.5 8h5" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
    "close": '<path d="M4 4l8 8m0-8l-8 8" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>',
    "menu": '<path d="M2 4h12M2 8h12M2 12h12" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
}


@functools.lru_cache(maxsize=64)
def icon(name: str, css_class: str = "icon") -> Markup:
    """A decorative inline SVG icon by name (`_ICON_PATHS`; unknown names get "neutral")."""
    paths = _ICON_PATHS.get(name, _ICON_PATHS["neutral"])
    return Markup(  # noqa: S704  (constant paths; the class is escaped)
        f'<svg class="{escape(css_class)}" aria-hidden="true" focusable="false" viewBox="0 0 16 16" '
        f'width="16" height="16">{paths}</svg>'
    )


# The words for each known status, translated (`make messages` extracts them); any other
# status is humanised as it is ("password_reset" → "Password reset").
STATUS_LABELS = {
    "ready": lazy_gettext("Ready"),
    "succeeded": lazy_gettext("Succeeded"),
    "active": lazy_gettext("Active"),
    "verified": lazy_gettext("Verified"),
    "enabled": lazy_gettext("Enabled"),
    "pending": lazy_gettext("Pending"),
    "queued": lazy_gettext("Queued"),
    "scheduled": lazy_gettext("Scheduled"),
    "running": lazy_gettext("Running"),
    "processing": lazy_gettext("Processing"),
    "uploading": lazy_gettext("Uploading"),
    "uploaded": lazy_gettext("Uploaded"),
    "retrying": lazy_gettext("Retrying"),
    "unverified": lazy_gettext("Unverified"),
    "locked": lazy_gettext("Locked"),
    "failed": lazy_gettext("Failed"),
    "rejected": lazy_gettext("Rejected"),
    "dead": lazy_gettext("Dead"),
    "error": lazy_gettext("Error"),
    "disabled": lazy_gettext("Disabled"),
    "deleted": lazy_gettext("Deleted"),
    "revoked": lazy_gettext("Revoked"),
    "cancelled": lazy_gettext("Cancelled"),
}


def humanise_status(status: object) -> str:
    """A status in words, in the request's language: "processing" → "Processing" ("In
    Bearbeitung"); an unknown one as it is, "password_reset" → "Password reset"."""
    key = str(status if status is not None else "unknown")
    label = STATUS_LABELS.get(key.lower())
    return str(label) if label is not None else key.replace("_", " ").capitalize()


def badge(status: object, label: str | None = None) -> Markup:
    """A status as a badge: its tone's colour and icon, then `label` or the humanised status.
    `<span class="badge badge--info" data-status="processing"><svg …/>Processing</span>`.
    Built once per (status, label, language): a table repeats a handful of them."""
    language = locale_code()
    try:
        return _badge(status, label, language)
    except TypeError:  # an unhashable label
        return _badge.__wrapped__(status, label, language)


@functools.lru_cache(maxsize=512)
def _badge(status: object, label: str | None, _language: str) -> Markup:
    tone = status_tone(status)
    text = label or humanise_status(status)
    return Markup(  # noqa: S704  (every value is escaped)
        f'<span class="badge badge--{tone}" data-status="{escape(status)}">{icon(tone)}{escape(text)}</span>'
    )


TOAST_LEVELS = ("success", "info", "warning", "error")
_TOAST_ICONS = {"success": "success", "info": "info", "warning": "warning", "error": "danger"}


def toast_html(message: str, level: str = "info", dismiss_label: str | None = None) -> Markup:
    """One toast (a flashed message, or the template static/js/hearth.js clones for an htmx
    `toast` event): errors are alerts, the rest statuses; the dismiss button works with
    JavaScript and is hidden without it (hearth.css)."""
    level = level if level in TOAST_LEVELS else "info"
    role = "alert" if level == "error" else "status"
    dismiss_label = dismiss_label or gettext("Dismiss")
    return Markup(  # noqa: S704  (every value is escaped)
        f'<div class="toast toast--{level}" role="{role}" data-level="{level}">'
        f"{icon(_TOAST_ICONS[level], 'icon toast__icon')}"
        f'<p class="toast__message">{escape(message)}</p>'
        f'<button type="button" class="toast__close ghost" aria-label="{escape(dismiss_label)}">'
        f"{icon('close')}</button>"
        "</div>"
    )


@functools.lru_cache(maxsize=16)
def toast_templates(dismiss_label: str) -> Markup:
    """The empty toast of each level in a `<template data-toast-template="level">`, for
    hearth.js (the same markup as a flashed message). Built once per label (per language)."""
    return Markup("").join(
        Markup('<template data-toast-template="{}">{}</template>').format(level, toast_html("", level, dismiss_label))
        for level in TOAST_LEVELS
    )


class UiComponents:
    """`ui` in every template without an `{% import %}`: templates/_ui.html's exports. (Jinja
    3.1 pays ~25 µs per `{% import %}` per render here, comparing the app's globals; both
    ways give the same macros.) Each name is looked up once, or on every use where templates
    reload (development), so an edit of _ui.html shows at once."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._env.get_template("_ui.html").module, name)
        if not self._env.auto_reload:
            setattr(self, name, value)
        return value


_SIZE_UNITS = ((1024**4, "TB"), (1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def filesize(value: int | float | None) -> str:
    """A byte count for people, one format everywhere: "512 B", "2.9 MB" (binary units,
    one decimal), or an em dash when unknown."""
    if value is None:
        return "—"
    for factor, unit in _SIZE_UNITS:
        if value >= factor:
            return f"{value / factor:.1f} {unit}"
    return f"{int(value)} B"


# (pattern, name): the first match wins, so the browsers that also say "Chrome" or "Safari"
# (Edge, Opera) come first, and iOS's browsers before desktop Safari.
_BROWSERS = tuple(
    (re.compile(pattern), name)
    for pattern, name in (
        (r"Edg(?:e|A|iOS)?/", "Edge"),
        (r"OPR/|Opera", "Opera"),
        (r"Firefox/|FxiOS/", "Firefox"),
        (r"Chrome/|CriOS/|Chromium/", "Chrome"),
        (r"Safari/", "Safari"),
    )
)
_SYSTEMS = tuple(
    (re.compile(pattern), name)
    for pattern, name in (
        (r"iPhone|iPad|iPod", "iOS"),
        (r"Android", "Android"),
        (r"CrOS", "ChromeOS"),
        (r"Windows", "Windows"),
        (r"Macintosh|Mac OS X", "macOS"),
        (r"Linux|X11", "Linux"),
    )
)


@functools.lru_cache(maxsize=512)
def browser_and_system(value: str) -> tuple[str | None, str | None]:
    """(browser, system) of a User-Agent header, None where unknown (no versions: "Firefox",
    "Linux")."""
    browser = next((name for pattern, name in _BROWSERS if pattern.search(value)), None)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(value)), None)
    return browser, system


def user_agent(value: str | None) -> str:
    """A User-Agent header as people say it: "Firefox on Linux", "Safari on iOS", or
    "Unknown browser" (translated). The parse is cached: a session list shows the same few
    strings again and again."""
    browser, system = browser_and_system(value) if value else (None, None)
    if browser and system:
        return gettext("%(browser)s on %(system)s", browser=browser, system=system)
    if browser:
        return browser
    return gettext("Unknown browser on %(system)s", system=system) if system else gettext("Unknown browser")


def time_tag(value: datetime | None, now: datetime | None = None) -> Markup:
    """A moment as `<time>`: relative words ("3 hours ago", "vor 3 Stunden": `format_relative`),
    the exact instant in `datetime` and the exact time in UTC, to the second, in `title`, shown
    on hover; or an em dash. In English the title is "2026-05-04 09:00:00 UTC" (no Babel
    format: a table row's budget); in another language the locale's own ("04.05.2026,
    09:00:00 UTC", `format_datetime`). A filter, so a table row pays a function call rather
    than a macro (admin/_macros.html `when` renders through it too). A naive value is taken as
    UTC, as the database stores it."""
    if not value:
        return Markup("—")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    locale, translations = request_state()
    words = relative_words(value, now, translations)
    # isoformat() only ever writes digits, "-", ":", "+", "T" and "." (the year always to four
    # digits): nothing to escape, and its first 19 characters are the date and the second,
    # cheaper than a strftime for every cell of a table.
    iso = value.isoformat()
    if locale.language == DEFAULT_LOCALE:
        utc = value.astimezone(UTC).isoformat() if value.utcoffset() else iso
        exact = f"{utc[:10]} {utc[11:19]} UTC"
    else:
        exact = escape(f"{format_datetime(value)} UTC")
    # `words` are our catalogue's (trusted, as templates' own translations) around a number.
    return Markup(f'<time datetime="{iso}" title="{exact}">{words}</time>')  # noqa: S704  (nothing to escape)


def upload_kinds() -> dict[str, str]:
    """Every upload kind (the uploads service's list) with its name for people (the uploads
    domain's KIND_LABELS), translated now: a table looks its rows' words up here rather than
    translating them row by row. A template global: every page that filters or lists uploads
    (/files, the admin) uses the same words."""
    return {kind: str(UPLOAD_KIND_LABELS.get(kind, kind.capitalize())) for kind in upload_service.KINDS}


def upload_statuses() -> dict[str, str]:
    """Every upload status (the model's enum) with its name for people, translated now."""
    return {str(status): str(UPLOAD_STATUS_LABELS[status]) for status in UploadStatus}


# A table's words, translated once per language --------------------------------------------------
#
# A table's headers and cell labels (`data-label`, the card layout's) are the same words on every
# row and every request in a language: built here once per (table, locale) and handed to the
# template as an object with attributes, so `L.kind` in a row is one attribute lookup. (A dict
# built in the template cost a translation per word per render, and `L.kind` on a dict is a
# failed getattr and an exception before the item lookup: ~0.4 µs, eleven times a row.)
# Each word is Markup, as templates' own `_` gives it (our catalogue: trusted); a sentence with a
# name in it carries a marker (`__NAME__`, `__EMAIL__`) that each row replaces with its value,
# escaped (Jinja's `replace` on Markup), for one translation per table instead of one per row.

_TABLE_LABELS: dict[tuple[str, str], SimpleNamespace] = {}


def _trusted(translated: str) -> Markup:
    return Markup(translated)  # noqa: S704  (our own catalogue: trusted, as templates' `_` treats it)


def _table_labels(table: str, build: Callable[[], dict[str, Any]]) -> SimpleNamespace:
    key = (table, str(current_locale()))
    labels = _TABLE_LABELS.get(key)
    if labels is None:
        labels = _TABLE_LABELS[key] = SimpleNamespace(**build())
    return labels


def _file_labels() -> dict[str, Any]:
    return {
        "file": _trusted(gettext("File")),
        "kind": _trusted(gettext("Kind")),
        "size": _trusted(gettext("Size")),
        "status": _trusted(gettext("Status")),
        "uploaded": _trusted(gettext("Uploaded")),
        "actions": _trusted(gettext("Actions")),
        "actions_for": _trusted(gettext("Actions for %(name)s", name="__NAME__")),
        "download": _trusted(gettext("Download")),
        "delete": _trusted(gettext("Delete")),
        "delete_question": _trusted(gettext("Delete %(name)s? This cannot be undone.", name="__NAME__")),
        "kinds": upload_kinds(),
        "statuses": upload_statuses(),
    }


def file_labels() -> SimpleNamespace:
    """The file table's words (/files and its rows): `L.kind`, `L.kinds[kind]`, and the sentences
    `actions_for` and `delete_question`, whose `__NAME__` a row replaces with the file's name."""
    return _table_labels("files", _file_labels)


def _user_list_labels() -> dict[str, Any]:
    return {
        "email": _trusted(gettext("Email")),
        "name": _trusted(gettext("Name")),
        "roles": _trusted(gettext("Roles")),
        "status": _trusted(gettext("Status")),
        "joined": _trusted(gettext("Joined")),
        "last": _trusted(gettext("Last sign-in")),
        "unverified": _trusted(gettext("Unverified")),
        "none": _trusted(gettext("none")),
        "select_for": _trusted(gettext("Select %(email)s", email="__EMAIL__")),
    }


def user_list_labels() -> SimpleNamespace:
    """The admin users table's words; `select_for`'s `__EMAIL__` a row replaces with the email."""
    return _table_labels("admin.users", _user_list_labels)


def _upload_list_labels() -> dict[str, Any]:
    return {
        "file": _trusted(gettext("File")),
        "owner": _trusted(gettext("Owner")),
        "kind": _trusted(gettext("Kind")),
        "size": _trusted(gettext("Size")),
        "status": _trusted(gettext("Status")),
        "uploaded": _trusted(gettext("Uploaded")),
    }


def upload_list_labels() -> SimpleNamespace:
    """The admin uploads table's words."""
    return _table_labels("admin.uploads", _upload_list_labels)


def init_templating(app: Flask) -> None:
    watch = app.extensions["hearth.settings"].is_development
    init_assets(app, watch=watch)
    links = app.extensions[LINKS_KEY] = TemplateLinks(app, assets_change=watch)
    app.jinja_env.filters["time_tag"] = time_tag
    app.jinja_env.filters["fill"] = UrlPattern.fill
    # Sizes and counts in the reader's language ("2,9 MB", "1.234"); `filesize` above is the
    # English one, for code that writes for no reader in particular.
    app.jinja_env.filters["filesize"] = format_filesize
    app.jinja_env.filters["number"] = format_number
    app.jinja_env.filters["user_agent"] = user_agent
    app.jinja_env.globals.update(
        avatar_url=avatar_url,
        has_endpoint=has_endpoint,
        is_htmx_request=is_htmx_request,
        translate_stored=translate_stored,
        is_public_page=is_public_page,
        url_for=links.url_for,
        asset_url=links.asset_url,
        url_pattern=url_pattern,
        status_tone=status_tone,
        upload_kinds=upload_kinds,
        upload_statuses=upload_statuses,
        file_labels=file_labels,
        user_list_labels=user_list_labels,
        upload_list_labels=upload_list_labels,
        ui_badge=badge,
        ui_icon=icon,
        ui_toast=toast_html,
        toast_templates=toast_templates,
        ui=UiComponents(app.jinja_env),
        hearth_version=__version__,
        htmx_file=f"vendor/htmx-{HTMX_VERSION}.min.js",
        pico_file=f"vendor/pico-{PICO_VERSION}.min.css",
        swagger_ui_dir=f"vendor/swagger-ui-{SWAGGER_UI_VERSION}",
        app_env=app.config["APP_ENV"],
    )
    # Flask's default context processor copies `g`, `request` and `session` into every
    # render's context; its Jinja environment already has them as globals (the same proxies),
    # and no Hearth context processor remains, so renders call none.
    from flask.templating import _default_template_ctx_processor

    processors = app.template_context_processors[None]
    if _default_template_ctx_processor in processors:
        processors.remove(_default_template_ctx_processor)
