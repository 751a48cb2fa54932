"""The admin API for integrators: `/api/v1/admin/users|roles|permissions|jobs/...`.

Thin views over the same services as the `/admin` pages (`app/users/management.py`,
`app/rbac/management.py`, `app/jobs/management.py`): those hold the rules (the last administrator, no
editing a role that holds permissions you lack, the admin role never losing a permission,
which jobs can be retried) and write the audit trail.
"""

from __future__ import annotations

from flask import Response, after_this_request, url_for

from app.api.openapi import api_operation
from app.api.v1.admin_schemas import (
    AdminJobDetailOut,
    AdminJobOut,
    AdminJobQuery,
    AdminPermissionList,
    AdminPermissionOut,
    AdminQueueList,
    AdminQueueOut,
    AdminRoleCreate,
    AdminRoleList,
    AdminRoleOut,
    AdminRolePatch,
    AdminUserRolesIn,
)
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import UserOut
from app.auth.freshness import fresh_auth_required
from app.auth.guards import actor_permissions, current_actor
from app.core.pagination import Page
from app.jobs import management as job_management
from app.rbac import management as role_management
from app.rbac.catalog import PERMISSIONS
from app.rbac.management import RoleSummary
from app.users import management as user_management

TAGS = ("admin",)

# Users ------------------------------------------------------------------------------------


def _update_user(user_id: int, **changes) -> UserOut:
    actor = current_actor()
    user = user_management.update_user(actor, actor_permissions(actor), user_management.get_user(user_id), **changes)
    return UserOut.model_validate(user, from_attributes=True)


@api_operation(
    v1_bp,
    "/admin/users/<int:user_id>/roles",
    method="PUT",
    summary="Set a user's roles",
    tags=TAGS,
    body=AdminUserRolesIn,
    response=UserOut,
    permission="roles:manage",
    errors=(404, 409),
)
@fresh_auth_required
def admin_set_user_roles(user_id: int, body: AdminUserRolesIn) -> UserOut:
    """Replaces every role the user holds. 409 when it would leave no active administrator."""
    return _update_user(user_id, roles=body.roles)


@api_operation(
    v1_bp,
    "/admin/users/<int:user_id>/disable",
    method="POST",
    summary="Disable a user",
    tags=TAGS,
    response=UserOut,
    permission="users:write",
    errors=(404, 409),
)
@fresh_auth_required
def admin_disable_user(user_id: int) -> UserOut:
    """Sign-in is refused and every session and token ends at once. 409 for yourself or the
    last active administrator."""
    return _update_user(user_id, is_active=False)


@api_operation(
    v1_bp,
    "/admin/users/<int:user_id>/enable",
    method="POST",
    summary="Enable a user",
    tags=TAGS,
    response=UserOut,
    permission="users:write",
    errors=(404,),
)
def admin_enable_user(user_id: int) -> UserOut:
    return _update_user(user_id, is_active=True)


@api_operation(
    v1_bp,
    "/admin/users/<int:user_id>/sign-out",
    method="POST",
    summary="Sign a user out everywhere",
    tags=TAGS,
    status=204,
    permission="users:write",
    errors=(404,),
)
def admin_sign_out_user(user_id: int) -> Response:
    """Ends every browser session and revokes every access and refresh token the user holds."""
    actor = current_actor()
    user_management.force_sign_out(actor, actor_permissions(actor), user_management.get_user(user_id))
    return Response(status=204)


@api_operation(
    v1_bp,
    "/admin/users/<int:user_id>/password-reset",
    method="POST",
    summary="Email a user a password reset link",
    tags=TAGS,
    status=202,
    permission="users:write",
    errors=(404, 409),
)
def admin_send_password_reset(user_id: int) -> Response:
    """The email is queued; the admin never sees or sets the password. 409 for a disabled account."""
    actor = current_actor()
    user_management.send_password_reset(actor, actor_permissions(actor), user_management.get_user(user_id))
    return Response(status=202)


# Roles and permissions --------------------------------------------------------------------


def _role_out(summary: RoleSummary) -> AdminRoleOut:
    role = summary.role
    return AdminRoleOut(
        name=role.name,
        description=role.description,
        permissions=sorted(permission.name for permission in role.permissions),
        members=summary.members,
        built_in=summary.built_in,
    )


@api_operation(
    v1_bp,
    "/admin/permissions",
    summary="List permissions",
    tags=TAGS,
    response=AdminPermissionList,
    permission="roles:manage",
)
def admin_list_permissions() -> AdminPermissionList:
    """Every permission a role can grant."""
    return AdminPermissionList(
        items=[AdminPermissionOut(name=name, description=description) for name, description in PERMISSIONS.items()]
    )


@api_operation(
    v1_bp, "/admin/roles", summary="List roles", tags=TAGS, response=AdminRoleList, permission="roles:manage"
)
def admin_list_roles() -> AdminRoleList:
    """Every role with its permissions and member count."""
    return AdminRoleList(items=[_role_out(summary) for summary in role_management.list_roles()])


@api_operation(
    v1_bp,
    "/admin/roles/<name>",
    summary="Get a role",
    tags=TAGS,
    response=AdminRoleOut,
    permission="roles:manage",
    errors=(404,),
)
def admin_get_role(name: str) -> AdminRoleOut:
    return _role_out(role_management.role_summary(name))


@api_operation(
    v1_bp,
    "/admin/roles",
    method="POST",
    summary="Create a role",
    tags=TAGS,
    body=AdminRoleCreate,
    response=AdminRoleOut,
    status=201,
    permission="roles:manage",
)
@fresh_auth_required
def admin_create_role(body: AdminRoleCreate) -> AdminRoleOut:
    """The `Location` header gives the new role's URL. 422 for a taken name or an unknown permission."""
    role = role_management.create_role(current_actor(), body.name, body.description, body.permissions)
    location = url_for("api.v1.admin_get_role", name=role.name)

    @after_this_request
    def _locate(response: Response) -> Response:
        response.headers["Location"] = location
        return response

    return _role_out(RoleSummary(role, members=0))


@api_operation(
    v1_bp,
    "/admin/roles/<name>",
    method="PATCH",
    summary="Update a role",
    tags=TAGS,
    body=AdminRolePatch,
    response=AdminRoleOut,
    permission="roles:manage",
    errors=(404,),
)
@fresh_auth_required
def admin_update_role(name: str, body: AdminRolePatch) -> AdminRoleOut:
    """`permissions` replaces the whole set. 403 when the role holds a permission you lack; 422
    for a grant beyond your own permissions or any permission taken from the built-in admin role."""
    actor = current_actor()
    role = role_management.get_role(name)
    permissions = body.permissions
    if permissions is None:
        permissions = [permission.name for permission in role.permissions]
    role_management.update_role(
        actor, role, permissions, description=body.description, actor_permissions=actor_permissions(actor)
    )
    return _role_out(role_management.role_summary(name))


@api_operation(
    v1_bp,
    "/admin/roles/<name>",
    method="DELETE",
    summary="Delete a role",
    tags=TAGS,
    status=204,
    permission="roles:manage",
    errors=(404, 409),
)
@fresh_auth_required
def admin_delete_role(name: str) -> Response:
    """403 when the role holds a permission you lack; 409 for a built-in role or one that
    accounts still hold."""
    actor = current_actor()
    role_management.delete_role(actor, role_management.get_role(name), actor_permissions(actor))
    return Response(status=204)


# Jobs -------------------------------------------------------------------------------------
# `/admin/jobs/queues` is registered before `/admin/jobs/<job_id>` (werkzeug also ranks a static
# segment above a variable one, so "queues" is never read as a job id).


@api_operation(
    v1_bp,
    "/admin/jobs",
    summary="List jobs",
    tags=TAGS,
    query=AdminJobQuery,
    response=AdminJobOut,
    paginated=True,
    permission="jobs:read",
)
def admin_list_jobs(query: AdminJobQuery) -> Page:
    """Newest first, filtered by queue, status, causing user and a search term."""
    filters = job_management.JobFilter(queue=query.queue, status=query.status, q=query.q, user_id=query.user_id)
    return job_management.list_jobs(filters, query.page, query.per_page)


@api_operation(
    v1_bp, "/admin/jobs/queues", summary="Queue overview", tags=TAGS, response=AdminQueueList, permission="jobs:read"
)
def admin_job_queues() -> AdminQueueList:
    """Per queue: jobs in each status and the configured worker concurrency."""
    return AdminQueueList(
        items=[AdminQueueOut.model_validate(queue, from_attributes=True) for queue in job_management.overview()]
    )


@api_operation(
    v1_bp,
    "/admin/jobs/<job_id>",
    summary="Get a job",
    tags=TAGS,
    response=AdminJobDetailOut,
    permission="jobs:read",
    errors=(404,),
)
def admin_get_job(job_id: str) -> AdminJobDetailOut:
    """Everything about the job but its payload, which is never shown (it can hold secrets)."""
    return AdminJobDetailOut.model_validate(job_management.get_job(job_id), from_attributes=True)


@api_operation(
    v1_bp,
    "/admin/jobs/<job_id>/retry",
    method="POST",
    summary="Retry a job",
    tags=TAGS,
    response=AdminJobDetailOut,
    permission="jobs:manage",
    errors=(404, 409),
)
def admin_retry_job(job_id: str) -> AdminJobDetailOut:
    """Runs a failed or revoked job again from its first attempt; 409 in any other state."""
    job = job_management.retry(current_actor(), job_management.get_job(job_id))
    return AdminJobDetailOut.model_validate(job, from_attributes=True)


@api_operation(
    v1_bp,
    "/admin/jobs/<job_id>/revoke",
    method="POST",
    summary="Revoke a job",
    tags=TAGS,
    response=AdminJobDetailOut,
    permission="jobs:manage",
    errors=(404, 409),
)
def admin_revoke_job(job_id: str) -> AdminJobDetailOut:
    """Cancels a pending or scheduled job so its task never runs; 409 in any other state."""
    job = job_management.revoke(current_actor(), job_management.get_job(job_id))
    return AdminJobDetailOut.model_validate(job, from_attributes=True)
