"""Template globals (`asset_url` and `url_pattern` among them) and the one helper that says
whether a request came from htmx.

Links a page builds identically on every request (its navigation, its forms' actions, its
stylesheets) are built once per app and reused (`TemplateLinks`): a rule with no arguments
always builds the same path under the same script root, and a page has dozens of them. The
`url_for` templates call is that memo; Python code keeps Flask's own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, current_app, has_request_context, request, url_for
from markupsafe import Markup
from werkzeug.routing import IntegerConverter, UnicodeConverter

from app.core.assets import asset_url, init_assets
from app.core.http_cache import is_public_page
from app.uploads.service import avatar_url
from app.version import __version__

HTMX_VERSION = "2.0.11"
PICO_VERSION = "2.1.1"
SWAGGER_UI_VERSION = "5.35.0"


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


def time_tag(value: datetime | None) -> Markup:
    """A moment as `<time>` (to the minute; the exact instant in `datetime`), or an em dash.
    A filter, so a table row pays a function call rather than a macro (admin/_macros.html
    `when` renders through it too)."""
    if not value:
        return Markup("—")
    # isoformat() only ever writes digits, "-", ":", "+", "T" and ".": nothing to escape. Its
    # first 16 characters are the date and the minute (`%Y-%m-%d %H:%M` but for the "T"),
    # cheaper than a strftime for every cell of a table; years before 1000 are padded
    # differently, so they take strftime.
    iso = value.isoformat()
    shown = f"{iso[:10]} {iso[11:16]}" if value.year >= 1000 else value.strftime("%Y-%m-%d %H:%M")
    return Markup(f'<time datetime="{iso}">{shown}</time>')  # noqa: S704  (nothing to escape: above)


def init_templating(app: Flask) -> None:
    watch = app.extensions["hearth.settings"].is_development
    init_assets(app, watch=watch)
    links = app.extensions[LINKS_KEY] = TemplateLinks(app, assets_change=watch)
    app.jinja_env.filters["time_tag"] = time_tag
    app.jinja_env.filters["fill"] = UrlPattern.fill
    app.jinja_env.globals.update(
        avatar_url=avatar_url,
        has_endpoint=has_endpoint,
        is_htmx_request=is_htmx_request,
        is_public_page=is_public_page,
        url_for=links.url_for,
        asset_url=links.asset_url,
        url_pattern=url_pattern,
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
