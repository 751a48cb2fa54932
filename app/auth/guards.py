"""Who is acting, and the one permission guard for browser and API routes alike.

Browser routes know the user from the flask-login session; API routes only from a bearer
token (the API never reads the session cookie). `permission_required` answers 401 (API) or a
redirect to sign-in (browser) when nobody is signed in, and 403 when the permission is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g, redirect, request, url_for
from flask_login import current_user

from app.auth.cache import family_accepted
from app.auth.tokens import InvalidAccessToken, decode_access_token
from app.core.api_paths import is_api_request
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
    try:
        claims = decode_access_token(token.strip())
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
    return user_id


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


def current_api_key() -> Any | None:
    """The personal API key (app.apikeys) authenticating this API request, else None."""
    return g.get("api_key")


def no_api_keys(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a view to requests authenticated by a personal API key (403 `api-key-not-allowed`)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _is_api_request():
            bearer_user_id()
            if current_api_key() is not None:
                raise ApiKeyNotAllowed()
        return view(*args, **kwargs)

    return guarded


def current_actor() -> User | None:
    if _is_api_request():
        return bearer_user()
    return current_user if current_user.is_authenticated else None


def actor_permissions(actor: User) -> frozenset[str]:
    return _permissions_for(actor.id)


def _permissions_for(user_id: int) -> frozenset[str]:
    if "actor_permissions" not in g:
        g.actor_permissions = permissions_of(user_id)
    return g.actor_permissions


def require_actor(permission: str | None = None) -> User:
    """The acting user, holding `permission` if given; else 401/403 (or a sign-in redirect)."""
    check_access(permission)
    return current_actor()


def check_access(permission: str | None = None) -> int:
    """401/403 (or a sign-in redirect) unless someone is signed in holding `permission`;
    returns their id. On the API it loads no user row: the token and the cached permission
    set are enough (views that need the user call `current_actor()`)."""
    if _is_api_request():
        user_id = bearer_user_id()
        if user_id is None:
            raise Unauthorized(_("Authentication required: send Authorization: Bearer <access token>."))
    else:
        if not current_user.is_authenticated:
            abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))
        user_id = current_user.id
    if permission is not None and permission not in _permissions_for(user_id):
        raise PermissionDenied(_("This needs the %(permission)r permission.", permission=permission))
    return user_id


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    return permission_required(None)(view)


def permission_required(permission: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a view (HTML or API) by a `resource:action` permission, or just by sign-in."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_access(permission)
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
