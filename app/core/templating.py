"""Template globals (`asset_url` among them) and the one helper that says whether a request came from htmx."""

from __future__ import annotations

from flask import Flask, current_app, request

HTMX_VERSION = "2.0.11"
PICO_VERSION = "2.1.1"
SWAGGER_UI_VERSION = "5.35.0"


def is_htmx_request() -> bool:
    """True for requests htmx made (it sends `HX-Request: true`), but not for history restores."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def has_endpoint(endpoint: str) -> bool:
    """Lets the layout link to features only once their blueprint is registered."""
    return endpoint in current_app.view_functions


def init_templating(app: Flask) -> None:
    from app import __version__
    from app.core.assets import init_assets
    from app.core.http_cache import is_public_page
    from app.uploads.service import avatar_url

    init_assets(app, watch=app.extensions["hearth.settings"].is_development)
    app.jinja_env.globals.update(
        avatar_url=avatar_url,
        has_endpoint=has_endpoint,
        is_htmx_request=is_htmx_request,
        is_public_page=is_public_page,
        hearth_version=__version__,
        htmx_file=f"vendor/htmx-{HTMX_VERSION}.min.js",
        pico_file=f"vendor/pico-{PICO_VERSION}.min.css",
        swagger_ui_dir=f"vendor/swagger-ui-{SWAGGER_UI_VERSION}",
        app_env=app.config["APP_ENV"],
    )
