"""Where Hearth removes a library's own hooks or relies on a library's private names, these
tests fail when an upgrade moves them, instead of the removal silently doing nothing (the hook
back on every request) or the override silently never being called.

Each seam has up to three checks: the library still registers (or defines) the thing in the
shape Hearth's code recognises; after `create_app` it is gone; and the behaviour Hearth relies
on instead still holds."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask import Flask

from app.extensions import csrf, login_manager


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _hooks(app: Flask) -> list[Callable[..., Any]]:
    """Every app-wide before/after/teardown request hook of `app`."""
    return [
        hook
        for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
        for hook in hooks.get(None, [])
    ]


@pytest.fixture()
def hearth_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


# Flask-Limiter (app.core.ratelimit.init_rate_limiting) --------------------------------------------


def test_flask_limiter_still_registers_the_hooks_hearth_recognises_as_its_own():
    from flask_limiter import Limiter

    from app.core.ratelimit import _belongs_to

    bare = Flask(__name__)
    limiter = Limiter(key_func=lambda: "client", storage_uri="memory://")
    limiter.init_app(bare)
    added = {
        "before": bare.before_request_funcs[None],
        "after": bare.after_request_funcs[None],
        "teardown": bare.teardown_request_funcs[None],
    }
    assert all(added.values()), added  # one of each: what Hearth removes
    assert all(_belongs_to(hook, limiter) for hook in _hooks(bare)), _hooks(bare)
    [after] = added["after"]
    assert isinstance(after, functools.partial)  # the one `_belongs_to` reads through `.args[0]`


def test_after_create_app_no_flask_limiter_hook_is_left(hearth_app):
    from app.core.ratelimit import _belongs_to

    limiter = hearth_app.extensions["hearth.limiter"]
    assert not [hook for hook in _hooks(hearth_app) if _belongs_to(hook, limiter)]


def test_route_limits_still_apply_through_the_decorator_alone(make_app):
    """Without Flask-Limiter's before hook, its decorator enforces a route's limit (the token
    endpoint allows 10 a minute per address), and `current_limit` names the breached one."""
    from flask_limiter import Limiter

    assert isinstance(inspect.getattr_static(Limiter, "current_limit"), property)
    client = make_app().test_client()
    statuses = [client.post("/api/v1/auth/token", json={}).status_code for _ in range(11)]
    assert statuses[:10] == [422] * 10 and statuses[10] == 429


# Flask-WTF (app.register_extensions drops CSRFProtect's before hook; the pipeline checks CSRF) ---


def test_flask_wtf_still_registers_one_hook_from_the_module_hearth_filters_on():
    from flask_wtf import CSRFProtect

    bare = Flask(__name__)
    CSRFProtect().init_app(bare)
    [hook] = bare.before_request_funcs[None]
    assert hook.__module__ == "flask_wtf.csrf"


def test_after_create_app_the_csrf_hook_is_gone_and_the_pipeline_still_checks_csrf(hearth_app):
    assert not [hook for hook in _hooks(hearth_app) if getattr(hook, "__module__", "") == "flask_wtf.csrf"]
    assert "apply_exemptions" in _parameters(type(csrf).protect)  # what app.pipeline calls
    response = hearth_app.test_client().post("/auth/login", data={"email": "a@example.com", "password": "x" * 12})
    assert response.status_code == 400  # refused for the missing token, by the pipeline


# Flask-Login (app.register_extensions, app.auth.session_records.init_session_tracking) -----------


def test_flask_login_still_registers_the_context_processor_and_the_remember_cookie_hook():
    from flask_login import LoginManager
    from flask_login.utils import _user_context_processor

    bare = Flask(__name__)
    manager = LoginManager()
    manager.init_app(bare)
    assert _user_context_processor in bare.template_context_processors[None]
    assert manager._update_remember_cookie in bare.after_request_funcs[None]
    assert _parameters(LoginManager._update_remember_cookie) == ["self", "response"]


def test_after_create_app_flask_logins_hooks_are_gone_and_current_user_is_a_global(hearth_app):
    from flask_login import current_user
    from flask_login.utils import _user_context_processor

    assert _user_context_processor not in hearth_app.template_context_processors[None]
    assert login_manager._update_remember_cookie not in hearth_app.after_request_funcs[None]
    assert hearth_app.jinja_env.globals["current_user"] is current_user


def test_logout_user_still_only_marks_the_remember_cookie_for_the_hook_hearth_replaces():
    """`sign_browser_out` deletes the remember cookie itself because Flask-Login's (removed)
    after hook was the only thing acting on this mark."""
    from flask_login import LoginManager, logout_user

    bare = Flask(__name__)
    bare.secret_key = "s" * 32
    manager = LoginManager()
    manager.init_app(bare)
    manager.user_loader(lambda _user_id: None)
    with bare.test_request_context(headers={"Cookie": "remember_token=copied"}):
        logout_user()
        assert flask.session.get("_remember") == "clear"
        untouched = flask.Response("x")
        flask.session.pop("_remember")
        manager._update_remember_cookie(untouched)  # without the mark, the hook does nothing
        assert "Set-Cookie" not in untouched.headers


# Flask (app.core.templating drops the default context processor) --------------------------------


def test_flask_still_registers_its_default_context_processor():
    from flask.templating import _default_template_ctx_processor

    assert Flask(__name__).template_context_processors[None] == [_default_template_ctx_processor]


def test_after_create_app_templates_read_request_session_and_g_as_globals(hearth_app):
    from flask.templating import _default_template_ctx_processor

    assert _default_template_ctx_processor not in hearth_app.template_context_processors[None]
    assert {"request", "session", "g"} <= set(hearth_app.jinja_env.globals)
    with hearth_app.test_request_context("/somewhere"):
        flask.g.mark = "here"
        rendered = flask.render_template_string("{{ request.path }} {{ g.mark }} {{ session.get('x', 'none') }}")
    assert rendered == "/somewhere here none"


# Werkzeug: the private header list (app.core.security_headers.SecurityHeaders.apply) -----------


def test_werkzeug_headers_keep_their_list_that_hearth_appends_to():
    response = flask.Response("x")
    assert isinstance(response.headers._list, list)
    response.headers._list.extend([("X-Frame-Options", "DENY"), ("X-Test", "1")])
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers.getlist("X-Test") == ["1"]
    assert ("X-Test", "1") in response.headers.to_wsgi_list()


def test_every_response_carries_the_security_headers_appended_that_way(hearth_app):
    response = hearth_app.test_client().get("/health/live")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


# Werkzeug and Flask: classes Hearth subclasses, overriding methods by name ----------------------


@pytest.mark.parametrize(
    ("method", "parameters"),
    [
        ("get_signing_serializer", ["self", "app"]),
        ("open_session", ["self", "app", "request"]),
        ("should_set_cookie", ["self", "app", "session"]),
        ("save_session", ["self", "app", "session", "response"]),
    ],
)
def test_flasks_session_interface_still_calls_the_methods_hearth_overrides(method, parameters):
    from flask.sessions import SecureCookieSessionInterface

    from app.core.cookie_session import BrowserSessionInterface

    assert _parameters(getattr(SecureCookieSessionInterface, method)) == parameters
    assert _parameters(getattr(BrowserSessionInterface, method)) == parameters


def test_werkzeugs_request_and_integer_converter_take_what_hearths_subclasses_pass_on():
    from werkzeug.routing import IntegerConverter
    from werkzeug.wrappers import Request

    from app.core.input import BoundedIntegerConverter, EdgeRequest

    assert (
        _parameters(Request.__init__)[:4]
        == _parameters(EdgeRequest.__init__)
        == [
            "self",
            "environ",
            "populate_request",
            "shallow",
        ]
    )
    assert {"map", "fixed_digits", "min", "max"} <= set(_parameters(IntegerConverter.__init__))
    assert _parameters(BoundedIntegerConverter.__init__) == ["self", "map", "fixed_digits", "min", "max"]


def test_request_bodies_keep_the_edge_json_loader_flask_would_replace(hearth_app):
    from app.core.input import _RequestJSON

    assert hasattr(flask.Request, "json_module")  # what Flask assigns `app.json` to on each request
    with hearth_app.test_request_context("/api/v1/status", json={"a": 1}):
        assert flask.request.json_module is _RequestJSON


# Flask-Caching (app.cache.backend) ----------------------------------------------------------------


def _redis_operations() -> set[str]:
    from flask_caching.backends.rediscache import RedisCache

    return {name for name in dir(RedisCache) if not name.startswith("_") and callable(getattr(RedisCache, name))}


def _guarded_operations() -> set[str]:
    from app.cache.backend import ResilientRedisCache

    return {name for name, value in vars(ResilientRedisCache).items() if callable(value) and not name.startswith("_")}


def test_every_redis_cache_operation_degrades_to_a_miss():
    """A public RedisCache method an upgrade adds would reach Redis unguarded: a 500 in an outage."""
    assert _redis_operations() - _guarded_operations() - {"factory"} == set()
    assert _guarded_operations() <= _redis_operations()  # and nothing guarded has disappeared


def test_flask_caching_still_builds_backends_with_the_factory_signature_hearth_implements():
    from flask_caching.backends.base import BaseCache

    from app.cache import backend

    assert _parameters(BaseCache.factory) == ["app", "config", "args", "kwargs"]
    own = [value for value in vars(backend).values() if isinstance(value, type) and "factory" in vars(value)]
    assert own  # the embedded profile's store
    assert all(_parameters(cls.factory) == ["app", "config", "args", "kwargs"] for cls in own)


# pytest-flask (tests/conftest.py replaces two of its fixtures) ------------------------------------


def test_pytest_flask_still_has_the_fixtures_the_suite_replaces():
    from pytest_flask import fixtures, plugin

    assert hasattr(plugin, "_push_request_context")  # renamed, it would push a context again
    assert "with app.test_client() as client" in inspect.getsource(fixtures.client)  # why `client` is replaced


def test_the_suites_client_leaves_no_request_context_behind(client):
    assert not flask.has_request_context()  # no context pushed for the whole test
    client.get("/health/live")
    assert not flask.has_request_context()  # and none kept after a request: `g` is never shared
