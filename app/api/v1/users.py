"""Users and roles for integrators: `/api/v1/users`, `/api/v1/users/{id}`, `/api/v1/roles`."""

from __future__ import annotations

from flask import Response

from app.api.openapi import api_operation, render_page
from app.api.pagination import RenderedPage
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import RoleList, RoleOut, UserListQuery, UserOut, UserPatch
from app.auth.freshness import fresh_auth_required, require_fresh_auth
from app.auth.guards import actor_permissions, current_actor
from app.core.pagination import Page
from app.users import management as user_management
from app.users.cache import user_page, user_profile


@api_operation(
    v1_bp,
    "/users",
    summary="List users",
    tags=("users",),
    query=UserListQuery,
    response=UserOut,
    paginated=True,
    permission="users:read",
)
def list_users(query: UserListQuery) -> RenderedPage:
    """Deleted users are listed only with `status=deleted`."""
    filters = {"q": query.q, "role": query.role, "status": query.status, "sort": query.sort}
    return user_page(filters, query.page, query.per_page, _rendered_user_page)


def _rendered_user_page(page: Page) -> RenderedPage:
    """What the list caches: the finished JSON and ETag, so a hit serialises nothing."""
    return render_page(page, UserOut)


def _user_out(user) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


@api_operation(
    v1_bp,
    "/users/<int:user_id>",
    summary="Get a user",
    tags=("users",),
    response=UserOut,
    permission="users:read",
    errors=(404,),
)
def get_user(user_id: int) -> UserOut:
    return user_profile(user_id, _user_out, lambda user_id: user_management.get_user(user_id, include_deleted=True))


@api_operation(
    v1_bp,
    "/users/<int:user_id>",
    method="PATCH",
    summary="Update a user",
    tags=("users",),
    body=UserPatch,
    response=UserOut,
    permission="users:write",
    errors=(404, 409),
)
def update_user(user_id: int, body: UserPatch) -> UserOut:
    """Disabling signs the user out everywhere at once. Changing `roles` also needs roles:manage.
    Changing `roles` or disabling needs a recent sign-in (401 `reauthentication-required`)."""
    actor = current_actor()
    changes = body.model_dump(exclude_unset=True)
    if "roles" in changes or changes.get("is_active") is False:
        require_fresh_auth()  # changing roles and disabling are step-up actions (app.auth.freshness)
    user = user_management.update_user(actor, actor_permissions(actor), user_management.get_user(user_id), **changes)
    return UserOut.model_validate(user, from_attributes=True)


@api_operation(
    v1_bp,
    "/users/<int:user_id>",
    method="DELETE",
    summary="Delete a user",
    tags=("users",),
    status=204,
    permission="users:delete",
    errors=(404, 409),
)
@fresh_auth_required
def delete_user(user_id: int) -> Response:
    """Soft delete: the account stays for the audit trail but can no longer be used."""
    actor = current_actor()
    user_management.delete_user(actor, actor_permissions(actor), user_management.get_user(user_id))
    return Response(status=204)


@api_operation(v1_bp, "/roles", summary="List roles", tags=("roles",), response=RoleList, permission="users:read")
def list_roles() -> RoleList:
    return RoleList(
        items=[
            RoleOut(name=role.name, description=role.description, permissions=sorted(p.name for p in role.permissions))
            for role in user_management.list_roles()
        ]
    )
