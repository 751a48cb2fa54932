"""Who is acting, and the one permission guard for browser and API routes alike.

Browser routes know the user from the flask-login session; API routes only from a bearer
token (the API never reads the session cookie). `permission_required` answers 401 (API) or a
redirect to sign-in (browser) when nobody is signed in, and 403 when the permission is missing.

The bearer is an access token (a JWT) or a personal API key (`hth_<prefix>_<secret>`,
app.apikeys). A key request acts as the key's owner with the permissions the key's scopes and
the owner both hold now. A route's own guard (`permission_required`, or `api_operation`'s
`auth`/`permission`, both through `authorize`) decides what a key needs: the route's permission,
or, on routes that only need someone signed in (their own data), the scope `self:read` (GET,
HEAD) or `self:write` (anything else). Checks a view makes inside (`require_actor()`,
`check_access()`, `ensure_owner_or`) add nothing once the route's guard has passed; without one,
the first such check asks for the own-data scope itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g, redirect, request, url_for
from flask_login import current_user

from app.apikeys.service import InvalidApiKey, KeyPrincipal, authenticate, looks_like_key
from app.auth.cache import family_accepted
from app.auth.tokens import InvalidAccessToken, decode_access_token
from app.core.api_paths import is_api_request
from app.core.net import client_address
from app.core.ratelimit import charge_failed_credential
from app.errors import NotFound, PermissionDenied, Unauthorized
from app.i18n import _
from app.rbac.service import permissions_of
from app.users.cache import token_accepted
from app.users.models import User
from app.users.service import load_principal


def _is_api_request() -> bool:
    return is_api_request()


def bearer_user_id() -> int | None:
    """The user id of a valid bearer token on this request (cached in `g`), else None.

    Checks the token against the user's cached (active, session epoch) and its sign-in's
    cached state, so a request that only needs a permission check loads no row; disabling a
    user, bumping their epoch (app.users.cache) or revoking the sign-in (app.auth.cache)
    invalidates those, so revoked tokens fail at once."""
    if "api_user_id" in g:
        return g.api_user_id
    g.api_user_id = None
    header = request.headers.get("Authorization", "")
    scheme, _space, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    token = token.strip()
    if looks_like_key(token):
        return _api_key_user_id(token)
    try:
        claims = decode_access_token(token)
        user_id = int(claims["sub"])
    except (InvalidAccessToken, ValueError):
        raise Unauthorized(_("The access token is invalid or expired.")) from None
    # Disabled users and revoked epochs fail at once, even with an unexpired token.
    if not token_accepted(user_id, claims.get("epoch")):
        raise Unauthorized(_("The access token has been revoked."))
    # API logout, reuse detection and the account page revoke one sign-in's tokens at once.
    if not family_accepted(claims["fam"], user_id):
        raise Unauthorized(_("The access token has been revoked."))
    g.api_user_id = user_id
    g.api_auth_time = claims.get("auth_time")  # step-up (app.auth.freshness)
    g.api_family = claims["fam"]  # this sign-in survives the others' end (app.auth.second_factor)
    return user_id


def _api_key_user_id(key: str) -> int:
    """Authenticate a personal API key (one query, app.apikeys.service.authenticate): the
    owner's id, with the key in `g.api_key` and no `auth_time` (a key never counts as a fresh
    sign-in). A key that fails is charged to the client's own rate-limit budget too."""
    try:
        principal = authenticate(key, client_address())
    except InvalidApiKey:
        charge_failed_credential()
        raise Unauthorized(_("The API key is invalid, expired or revoked.")) from None
    g.api_key = principal
    g.api_user_id = principal.user_id
    g.api_auth_time = None
    return principal.user_id


def bearer_user() -> User | None:
    """The user of a valid bearer token on this request (loaded once, cached in `g`), else None."""
    if "api_user" in g:
        return g.api_user
    user_id = bearer_user_id()
    user = load_principal(user_id) if user_id is not None else None
    if user_id is not None and (user is None or not user.is_active):
        raise Unauthorized(_("The access token has been revoked."))
    g.api_user = user
    return user


class ApiKeyNotAllowed(PermissionDenied):
    """What a personal API key may never do: create keys, change 2FA, the password or the
    email, impersonate, or any step-up action (those need a person who just proved who they
    are)."""

    slug = "api-key-not-allowed"

    def __init__(self) -> None:
        super().__init__(_("An API key cannot do this: sign in with your password to get an access token."))


class InsufficientScope(PermissionDenied):
    """A personal API key's scopes (∩ its owner's permissions) do not cover this request: the
    problem names the `scope` it needs (RFC 6750's insufficient_scope)."""

    slug = "insufficient-scope"

    def __init__(self, detail: str, scope: str) -> None:
        super().__init__(detail, scope=scope)


def current_api_key() -> KeyPrincipal | None:
    """The personal API key (app.apikeys) authenticating this API request, else None."""
    return g.get("api_key")


NO_API_KEYS_ATTR = "__hearth_no_api_keys__"  # on a view: refused to API keys (api_operation reads it)


def refuse_api_key() -> None:
    """ApiKeyNotAllowed if this API request is authenticated by a personal API key."""
    if _is_api_request():
        bearer_user_id()
        if current_api_key() is not None:
            raise ApiKeyNotAllowed()


def no_api_keys(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a view to requests authenticated by a personal API key (403 `api-key-not-allowed`);
    under `api_operation`, before anything else is checked."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        refuse_api_key()
        return view(*args, **kwargs)

    setattr(guarded, NO_API_KEYS_ATTR, True)
    return guarded


def current_actor() -> User | None:
    if _is_api_request():
        return bearer_user()
    return current_user if current_user.is_authenticated else None


def actor_permissions(actor: User) -> frozenset[str]:
    return _permissions_for(actor.id)


def _permissions_for(user_id: int) -> frozenset[str]:
    """The acting user's permissions, once per request; for an API key, those its scopes name."""
    if "actor_permissions" not in g:
        held = permissions_of(user_id)
        key = g.get("api_key")
        g.actor_permissions = held if key is None else held & key.scopes
    return g.actor_permissions


def require_actor(permission: str | None = None) -> User:
    """The acting user, holding `permission` if given; else 401/403 (or a sign-in redirect)."""
    check_access(permission)
    return current_actor()


def check_access(permission: str | None = None) -> int:
    """401/403 (or a sign-in redirect) unless someone is signed in holding `permission`;
    returns their id. On the API it loads no user row: the token and the cached permission
    set are enough (views that need the user call `current_actor()`)."""
    return _check_access(permission, route_guard=False)


def authorize(permission: str | None = None) -> int:
    """A route's own guard (`permission_required`, `api_operation`): `check_access`, after which
    the checks the view makes inside ask an API key for nothing more (module docstring)."""
    return _check_access(permission, route_guard=True)


KEY_AUTHORIZED = "api_key_authorized"  # `g`: the route's own guard passed this key request


def _check_access(permission: str | None, route_guard: bool) -> int:
    if not _is_api_request():
        if not current_user.is_authenticated:
            abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))
        user_id = current_user.id
        if permission is not None and permission not in _permissions_for(user_id):
            raise PermissionDenied(_("This needs the %(permission)r permission.", permission=permission))
        return user_id
    # The request's `g`, read as a dict: one context lookup for everything below, so an access
    # token request pays nothing for what only API keys need.
    request_vars = g._get_current_object().__dict__
    user_id = request_vars["api_user_id"] if "api_user_id" in request_vars else bearer_user_id()
    if user_id is None:
        raise Unauthorized(_("Authentication required: send Authorization: Bearer <access token>."))
    key = request_vars.get("api_key")
    if key is not None and permission is None and not request_vars.get(KEY_AUTHORIZED):
        _check_own_data_scope(key)
    if permission is not None:
        held = request_vars.get("actor_permissions")
        if permission not in (held if held is not None else _permissions_for(user_id)):
            if key is not None:
                raise InsufficientScope(
                    _("This API key lacks the %(permission)r permission.", permission=permission), permission
                )
            raise PermissionDenied(_("This needs the %(permission)r permission.", permission=permission))
    if key is not None and route_guard:
        request_vars[KEY_AUTHORIZED] = True
    return user_id


def _check_own_data_scope(key: KeyPrincipal) -> None:
    """A key on a route for the owner's own data needs `self:read`, or `self:write` to change it."""
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    if not key.allows_own_data(write):
        scope = "self:write" if write else "self:read"
        raise InsufficientScope(_("This API key needs the %(scope)r scope.", scope=scope), scope)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    return permission_required(None)(view)


def permission_required(permission: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a view (HTML or API) by a `resource:action` permission, or just by sign-in."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            authorize(permission)
            return view(*args, **kwargs)

        guarded.__hearth_permission__ = permission or "authenticated"
        return guarded

    return decorator


def verified_email_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """For features that need a confirmed address: signed in, and the email verified (else 403)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        actor = require_actor()
        if actor.email_verified_at is None:
            raise PermissionDenied(_("Confirm your email address first: follow the link we emailed you."))
        return view(*args, **kwargs)

    return guarded


def ensure_owner_or(permission: str, owner_id: int | None) -> User:
    """Object-level check for every route that loads an object by id: the actor owns it, or
    holds `permission` (e.g. "uploads:read_any"). Others get 404, so ids cannot be probed."""
    actor = require_actor()
    if owner_id is not None and owner_id == actor.id:
        return actor
    if permission in actor_permissions(actor):
        return actor

    raise NotFound()
