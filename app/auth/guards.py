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

from app.auth.tokens import InvalidAccessToken, decode_access_token
from app.errors import PermissionDenied, Unauthorized
from app.rbac.service import permissions_of
from app.users.models import User
from app.users.service import load_principal


def _is_api_request() -> bool:
    return request.path.startswith("/api/")


def bearer_user() -> User | None:
    """The user of a valid bearer token on this request (cached in `g`), else None."""
    if "api_user" in g:
        return g.api_user
    g.api_user = None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        claims = decode_access_token(token.strip())
        user = load_principal(int(claims["sub"]))
    except (InvalidAccessToken, ValueError):
        raise Unauthorized("The access token is invalid or expired.") from None
    # Disabled users and revoked epochs fail at once, even with an unexpired token.
    if user is None or not user.is_active or claims.get("epoch") != user.session_epoch:
        raise Unauthorized("The access token has been revoked.")
    g.api_user = user
    return user


def current_actor() -> User | None:
    if _is_api_request():
        return bearer_user()
    return current_user if current_user.is_authenticated else None


def actor_permissions(actor: User) -> frozenset[str]:
    if "actor_permissions" not in g:
        g.actor_permissions = permissions_of(actor.id)
    return g.actor_permissions


def require_actor(permission: str | None = None) -> User:
    """The acting user, holding `permission` if given; else 401/403 (or a sign-in redirect)."""
    return _require(permission)


def _require(permission: str | None) -> User:
    actor = current_actor()
    if actor is None:
        if _is_api_request():
            raise Unauthorized("Authentication required: send Authorization: Bearer <access token>.")
        abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))
    if permission is not None and permission not in actor_permissions(actor):
        raise PermissionDenied(f"This needs the {permission!r} permission.")
    return actor


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    return permission_required(None)(view)


def permission_required(permission: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a view (HTML or API) by a `resource:action` permission, or just by sign-in."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _require(permission)
            return view(*args, **kwargs)

        guarded.__hearth_permission__ = permission or "authenticated"
        return guarded

    return decorator


def verified_email_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """For features that need a confirmed address: signed in, and the email verified (else 403)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        actor = _require(None)
        if actor.email_verified_at is None:
            raise PermissionDenied("Confirm your email address first: follow the link we emailed you.")
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
    from app.errors import NotFound

    raise NotFound()
