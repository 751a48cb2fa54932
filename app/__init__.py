"""Hearth application factory."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import Flask, has_request_context
from flask_login import current_user
from flask_login.utils import _user_context_processor
from werkzeug.middleware.proxy_fix import ProxyFix

from app import models  # noqa: F401  (every table on the metadata, for Alembic too)
from app.account import api_keys as _api_key_routes  # noqa: F401  (routes register on import)
from app.account import passkeys as _passkey_routes  # noqa: F401
from app.account import security as _security_routes  # noqa: F401
from app.account.notifications import notifications_bp
from app.account.routes import account_bp
from app.admin import admin_bp
from app.api import api_bp
from app.auth import passkey_routes as _passkey_sign_in  # noqa: F401  (routes register on import)
from app.auth import reauth_routes as _reauth_routes  # noqa: F401
from app.auth.routes import auth_bp
from app.auth.second_factor import init_two_factor_policy
from app.auth.session_records import init_session_tracking
from app.cache.aside import init_caching
from app.cli import register_cli
from app.config import INSTANCE_PATH, Settings, load_settings
from app.core.cookie_session import BrowserSessionInterface
from app.core.database import enable_sqlite_wal
from app.core.input import init_input_validation
from app.core.migrations import init_migrations
from app.core.ratelimit import init_rate_limiting, install_route_limits
from app.core.templating import init_templating
from app.core.toasts import init_toasts
from app.errors import QuietOutagesFlask, register_error_handlers
from app.extensions import app_limiter, cache, csrf, db, login_manager
from app.files.exports import exports_bp
from app.files.routes import files_bp
from app.flags import init_flags
from app.health.routes import health_bp
from app.i18n import init_i18n, vary_on_language
from app.logging import configure_logging, redacted_path
from app.mail.routes import dev_mail_bp
from app.main.routes import main_bp
from app.metrics import init_metrics
from app.pipeline import add_browser_hooks, init_pipeline
from app.storage import init_storage
from app.version import __version__
from tasks import queues as task_queues

__all__ = ["__version__", "create_app", "get_settings"]

# Scripts may only come from our own origin; styles likewise. No inline code anywhere, so
# neither 'unsafe-inline' nor 'unsafe-eval' is ever needed.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def storage_origin(settings: Settings) -> str | None:
    """The S3 origin browsers upload to and load thumbnails from (None for local storage)."""
    if settings.storage_backend != "s3":
        return None
    if settings.s3_endpoint_url:
        from urllib.parse import urlsplit

        parts = urlsplit(settings.s3_endpoint_url)
        return f"{parts.scheme}://{parts.netloc}"
    return f"https://s3.{settings.s3_region}.amazonaws.com"


def content_security_policy(settings: Settings) -> dict[str, str]:
    """The strict policy, opened only to the storage endpoint for uploads and thumbnails."""
    policy = dict(CONTENT_SECURITY_POLICY)
    origin = storage_origin(settings)
    if origin:
        for directive in ("connect-src", "form-action", "img-src"):
            policy[directive] = f"{policy[directive]} {origin}"
    return policy


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build a Hearth app. `config` overrides settings by field name (tests use this)."""
    settings = load_settings(config)
    app = QuietOutagesFlask(
        __name__, template_folder="../templates", static_folder="../static", instance_path=str(INSTANCE_PATH)
    )
    app.extensions["hearth.settings"] = settings
    app.extensions["hearth.started_at"] = time.time()
    app.config.from_mapping(_flask_config(settings))
    app.session_interface = BrowserSessionInterface()

    configure_logging(settings.log_level)
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )
    if settings.sentry_dsn:
        _init_sentry(settings)

    register_extensions(app, settings)
    register_blueprints(app, settings)
    register_errorhandlers(app)
    register_commands(app)
    register_template_helpers(app)

    task_queues.init_app(app, settings)
    return app


def get_settings() -> Settings:
    """The settings of the current app."""
    from flask import current_app

    return current_app.extensions["hearth.settings"]


def _flask_config(settings: Settings) -> dict[str, Any]:
    secure_cookies = settings.is_production_like
    config: dict[str, Any] = {
        "APP_ENV": settings.app_env.value,
        "TESTING": settings.app_env == "test",
        # Unhandled errors always become a 500 page/problem, in tests too (never re-raised).
        "PROPAGATE_EXCEPTIONS": False,
        "SECRET_KEY": settings.secret_key,
        "JWT_SECRET": settings.jwt_secret,
        "MAX_CONTENT_LENGTH": settings.max_content_length,
        "SQLALCHEMY_DATABASE_URI": settings.sqlalchemy_url,
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(settings.sqlalchemy_url),
        "SESSION_COOKIE_SECURE": secure_cookies,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # "Keep me signed in" is app.auth.session_records' own cookie (a random token checked against
        # `remember_tokens`), with these attributes; Flask-Login only ever deletes it by name.
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # The remember-me record's absolute lifetime, counted from the password sign-in.
        "REMEMBER_COOKIE_DURATION": timedelta(days=14),
        # __Host- cookies are Secure, host-only and Path=/: no subdomain can plant or read them.
        "SESSION_COOKIE_NAME": "__Host-session" if secure_cookies else "session",
        "REMEMBER_COOKIE_NAME": "__Host-remember" if secure_cookies else "remember_token",
        # Idle timeout: the permanent session cookie is re-issued whenever its record's
        # last_seen_at moves (app.core.cookie_session) and expires after this much inactivity
        # (app.auth.session_records also enforces it server-side).
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=settings.session_idle_minutes),
        # CSRF tokens live as long as the session: a page left open never fails with a bare 400.
        "WTF_CSRF_TIME_LIMIT": None,
        "TEMPLATES_AUTO_RELOAD": settings.is_development,
        "METRICS_TOKEN": settings.metrics_token,
        # CSRF is checked by app.pipeline for browser routes only (never for /api/).
        "WTF_CSRF_CHECK_DEFAULT": False,
        # Compression (app.core.compression): never for a body that fits in one TCP segment.
        "COMPRESS_ALGORITHM": ["br", "gzip"],
        "COMPRESS_MIN_SIZE": 1400,
        # Flask-Limiter, for route limits (app.core.ratelimit holds the app-wide budget).
        "RATELIMIT_STRATEGY": "fixed-window",
        # Headers only on 429 (app.errors adds them): on every response they would cost two
        # more Redis round trips per request.
        "RATELIMIT_HEADERS_ENABLED": False,
        "RATELIMIT_KEY_PREFIX": f"{settings.redis_prefix}:rl",
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "CACHE_DEFAULT_TIMEOUT": settings.cache_default_timeout,
        "CACHE_KEY_PREFIX": f"{settings.redis_prefix}:cache:",
    }
    if settings.redis_url:
        timeouts = {
            "socket_timeout": settings.redis_timeout_seconds,
            "socket_connect_timeout": settings.redis_timeout_seconds,
        }
        config.update(
            RATELIMIT_STORAGE_URI=settings.redis_url,
            RATELIMIT_STORAGE_OPTIONS=timeouts,
            CACHE_TYPE="app.cache.backend.ResilientRedisCache",
            CACHE_REDIS_URL=settings.redis_url,
            CACHE_OPTIONS=timeouts,
        )
    else:
        config.update(RATELIMIT_STORAGE_URI="memory://", CACHE_TYPE="app.cache.backend.EmbeddedSimpleCache")
    return config


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # WAL lets the web process read while a worker writes; busy timeout rides out locks.
        return {"connect_args": {"timeout": 15}}
    # pre_ping survives a restarted PostgreSQL; recycle avoids idle connections cut by proxies.
    # A request waits at most 10 s for a pooled connection, then answers 503 (app.errors),
    # well inside gunicorn's 30 s timeout, instead of the default 30 s and a killed worker.
    return {
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "pool_size": 10,
        "max_overflow": 10,
        "pool_timeout": 10,
        "connect_args": {"connect_timeout": 5},
    }


def _init_sentry(settings: Settings) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.app_env.value,
        release=__version__,
        integrations=[FlaskIntegration()],
        # No identities, bodies or local variables: they may hold passwords or tokens.
        data_collection={"user_info": False, "http_bodies": [], "stack_frame_variables": False},
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=_without_url_secrets,
    )


def _without_url_secrets(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """Reset, verify and download links carry live tokens in their path: Sentry gets the
    redacted path (as the logs do) and no query string."""
    request_data = event.get("request")
    if isinstance(request_data, dict):
        request_data.pop("query_string", None)
        if has_request_context():
            request_data["url"] = redacted_path()
        else:
            request_data.pop("url", None)
    return event


def register_extensions(app: Flask, settings: Settings) -> None:
    """Bind every extension. The global request pipeline (app.pipeline) is registered first:
    its before hook runs before, and its after hook after, every other extension's."""
    init_metrics(app)
    # The app-wide budget and Flask-Limiter (route limits only: no hooks of its own).
    budget, limiter = init_rate_limiting(app, settings)
    app.extensions["hearth.limiter"] = limiter
    init_pipeline(app, settings, budget, content_security_policy(settings))
    # Edge validation's converter and request class (its check runs in the pipeline), before
    # register_blueprints adds the rules that use the bounded <int:> converter.
    init_input_validation(app)

    db.init_app(app)
    with app.app_context():
        enable_sqlite_wal(db.engine)
    init_migrations(app)
    csrf.init_app(app)
    # The pipeline checks CSRF on browser routes itself (WTF_CSRF_CHECK_DEFAULT is off, so
    # Flask-WTF's own hook would only return).
    app.before_request_funcs[None] = [
        hook for hook in app.before_request_funcs[None] if getattr(hook, "__module__", "") != "flask_wtf.csrf"
    ]
    login_manager.init_app(app)
    # Flask-Login's context processor loads the user (session, record, remember-me cookie) for
    # every template rendered, used or not; a global proxy loads it only where a template
    # reads `current_user` (a public page never does).
    app.template_context_processors[None].remove(_user_context_processor)
    app.jinja_env.globals["current_user"] = current_user
    # "basic": a session whose fingerprint changes loses freshness; "strong" would clear the
    # remember cookie on every anonymous page that carries a CSRF token.
    login_manager.session_protection = "basic"
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    cache.init_app(app)
    init_caching(app)
    init_i18n(app)
    # A page whose language came from Accept-Language says so (browser routes only: API
    # responses are never shared-cacheable).
    add_browser_hooks(app, after=vary_on_language)

    # The user loader, the session-record check and the remember-me cookie.
    init_session_tracking(app)
    # REQUIRE_2FA_FOR_ROLES: after the session check, which knows who is signed in.
    init_two_factor_policy(app)


def register_blueprints(app: Flask, settings: Settings) -> None:
    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(files_bp)
    app.register_blueprint(exports_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(api_bp)
    if settings.is_development:
        app.register_blueprint(dev_mail_bp)
    init_storage(app)
    install_route_limits(app, app_limiter(app))


def register_errorhandlers(app: Flask) -> None:
    register_error_handlers(app)


def register_commands(app: Flask) -> None:
    register_cli(app)


def register_template_helpers(app: Flask) -> None:
    init_templating(app)
    init_toasts(app)
    init_flags(app)
