"""`/api/v1/notifications`: the caller's notifications, marking them read, and preferences."""

from __future__ import annotations

from flask import Response

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.notification_schemas import (
    NotificationListQuery,
    NotificationOut,
    NotificationPreferences,
    preferences_in,
    preferences_out,
)
from app.auth.guards import check_access, current_actor
from app.core.pagination import Page
from app.i18n import translate_stored
from app.notifications import service
from app.notifications.models import Notification


def notification_out(row: Notification) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        kind=row.kind,
        title=translate_stored(row.title) or "",
        body=translate_stored(row.body) or "",
        link=row.link,
        created_at=row.created_at,
        read_at=row.read_at,
    )


@api_operation(
    v1_bp,
    "/notifications",
    summary="List my notifications",
    tags=("notifications",),
    query=NotificationListQuery,
    response=NotificationOut,
    paginated=True,
    auth=True,
)
def list_notifications(query: NotificationListQuery) -> Page:
    """Newest first; `unread=true` for the unread ones only."""
    page = service.list_notifications(check_access(), query.unread, query.page, query.per_page)
    return Page(
        items=[notification_out(row) for row in page.items], page=page.page, per_page=page.per_page, total=page.total
    )


@api_operation(
    v1_bp,
    "/notifications/<int:notification_id>/read",
    method="POST",
    summary="Mark a notification read",
    tags=("notifications",),
    status=204,
    auth=True,
    errors=(404,),
)
def read_notification(notification_id: int) -> Response:
    """Marking one already read changes nothing. Another user's notification is 404."""
    service.mark_read(check_access(), notification_id)
    return Response(status=204)


@api_operation(
    v1_bp,
    "/notifications/read-all",
    method="POST",
    summary="Mark all my notifications read",
    tags=("notifications",),
    status=204,
    auth=True,
)
def read_all_notifications() -> Response:
    service.mark_all_read(check_access())
    return Response(status=204)


@api_operation(
    v1_bp,
    "/notifications/preferences",
    summary="My notification preferences",
    tags=("notifications",),
    response=NotificationPreferences,
    auth=True,
)
def get_preferences():
    """Every kind, with whether it reaches you in Hearth and by email (the catalogue's defaults
    until you change them)."""
    return preferences_out(service.preferences(check_access()))


@api_operation(
    v1_bp,
    "/notifications/preferences",
    method="PUT",
    summary="Set my notification preferences",
    tags=("notifications",),
    body=NotificationPreferences,
    response=NotificationPreferences,
    auth=True,
    errors=(422,),
)
def put_preferences(body):
    """Kinds left out keep their setting. An unknown kind is a 422 naming it; switching a
    security notice's email off (`security.*`) is a 422 naming `<kind>.email`."""
    choices = {
        kind: service.ChannelChoice(in_app=value.in_app, email=value.email)
        for kind, value in preferences_in(body).items()
    }
    return preferences_out(service.set_preferences(current_actor(), choices))
