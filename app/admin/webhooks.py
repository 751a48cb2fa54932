"""`/admin/webhooks`: register outbound webhook endpoints, edit, disable, test and delete them,
rotate their signing secrets, and read and redeliver their deliveries.

The same service as `/api/v1/webhooks` (app.webhooks.service). Every action is a plain form
that POSTs and redirects, so the pages work without JavaScript. The signing secret is shown
once, on the page that answers the create or rotate POST itself: never put in a flash
message (a cookie) or a URL, and never shown again.
"""

from __future__ import annotations

from typing import Any

from flask import Response, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, URLField
from wtforms.validators import Length

from app.admin.common import actor, admin_bp, ask_confirmation, confirmed, render_list, run_action
from app.auth.freshness import fresh_auth_required, require_fresh_auth
from app.auth.guards import permission_required
from app.core.forms import apply_service_errors
from app.core.pagination import Page
from app.errors import ValidationFailed
from app.i18n import _, _l, translate_stored
from app.webhooks import service
from app.webhooks.models import DESCRIPTION_MAX_LENGTH, URL_MAX_LENGTH, WebhookEndpoint

PERMISSION = "webhooks:manage"
PAGE_SIZE = 25
DELIVERIES_PAGE_SIZE = 20


class WebhookForm(FlaskForm):
    """An endpoint's URL, events and description. The rules (scheme, private targets, known
    events) are the service's: its ValidationFailed lands on these fields."""

    url = URLField(
        _l("URL"),
        validators=[Length(max=URL_MAX_LENGTH)],
        description=_l("Where events are POSTed; https:// in production. Redirects are not followed."),
        render_kw={"autocomplete": "off", "spellcheck": "false", "inputmode": "url"},
    )
    events = SelectMultipleField(_l("Events"), choices=[], validate_choice=False)
    description = StringField(
        _l("Description"), validators=[Length(max=DESCRIPTION_MAX_LENGTH)], render_kw={"autocomplete": "off"}
    )


def _form(endpoint: WebhookEndpoint | None = None) -> WebhookForm:
    """The form, filled from the request when one was posted, else from `endpoint`."""
    form = WebhookForm(obj=endpoint) if request.method == "GET" else WebhookForm()
    form.events.choices = _event_choices()
    return form


def _event_choices() -> list[tuple[str, str]]:
    """The events one may subscribe to, described in the reader's language (the catalogue's
    descriptions are stored sentences)."""
    return [(name, translate_stored(description) or name) for name, description in service.event_types()]


def _save(change: Any, form: WebhookForm) -> Any | None:
    """Run the service call `change(url, events, description)`; its validation errors go on the
    form's fields (None then). CSRF and lengths are checked first by the form."""
    if not form.validate():
        return None
    try:
        return change(
            (form.url.data or "").strip(), list(form.events.data or []), (form.description.data or "").strip()
        )
    except ValidationFailed as error:
        apply_service_errors(form, error)
        return None


def _secret_page(endpoint: WebhookEndpoint, secret: str, created: bool) -> str:
    """The one page that shows a signing secret: the answer to the POST itself."""
    return render_template("admin/webhooks/secret.html", endpoint=endpoint, secret=secret, created=created)


# List and create ---------------------------------------------------------------------------


@admin_bp.get("/webhooks")
@permission_required(PERMISSION)
def webhooks() -> str:
    page: Page = service.list_endpoints(request.args.get("page", 1, type=int), PAGE_SIZE)
    return render_list(
        "admin/webhooks/index.html",
        "admin/webhooks/_list.html",
        page=page,
        last=service.last_deliveries([endpoint.id for endpoint in page.items]),
        form=_form(),
    )


@admin_bp.get("/webhooks/new")
@permission_required(PERMISSION)
def new_webhook() -> str:
    return render_template("admin/webhooks/new.html", form=_form())


@admin_bp.post("/webhooks")
@permission_required(PERMISSION)
@fresh_auth_required
def create_webhook() -> tuple[str, int] | str:
    """Valid: the secret page (200). Refused: the form again with its errors (422)."""
    form = _form()
    created = _save(lambda url, events, description: service.create_endpoint(actor(), url, events, description), form)
    if created is None:
        return render_template("admin/webhooks/new.html", form=form), 422
    endpoint, secret = created
    return _secret_page(endpoint, secret, created=True)


# One endpoint ------------------------------------------------------------------------------


def _detail(endpoint: WebhookEndpoint, form: WebhookForm) -> str:
    page = service.list_deliveries(endpoint.id, request.args.get("page", 1, type=int), DELIVERIES_PAGE_SIZE)
    return render_list(
        "admin/webhooks/detail.html",
        "admin/webhooks/_deliveries.html",
        endpoint=endpoint,
        page=page,
        form=form,
        events=dict(_event_choices()),
    )


@admin_bp.get("/webhooks/<webhook_id>")
@permission_required(PERMISSION)
def webhook_detail(webhook_id: str) -> str:
    endpoint = service.get_endpoint(webhook_id)
    return _detail(endpoint, _form(endpoint))


@admin_bp.post("/webhooks/<webhook_id>")
@permission_required(PERMISSION)
def update_webhook(webhook_id: str) -> Response | tuple[str, int]:
    """The edit form. Refused: the page again with the errors on its fields (422). A new URL
    points deliveries somewhere else, as registering does: it needs a recent sign-in."""
    endpoint = service.get_endpoint(webhook_id)
    if (request.form.get("url") or "").strip() != endpoint.url:
        require_fresh_auth()
    form = _form(endpoint)
    saved = _save(
        lambda url, events, description: service.update_endpoint(
            actor(), endpoint, url=url, events=events, description=description
        ),
        form,
    )
    if saved is None:
        return _detail(service.get_endpoint(webhook_id), form), 422
    return run_action(lambda: _("Webhook endpoint saved."), url_for("admin.webhook_detail", webhook_id=webhook_id))


@admin_bp.post("/webhooks/<webhook_id>/enable")
@permission_required(PERMISSION)
@fresh_auth_required
def enable_webhook(webhook_id: str) -> Response:
    endpoint = service.get_endpoint(webhook_id)

    def apply() -> str:
        service.update_endpoint(actor(), endpoint, is_active=True)
        return _("Webhook endpoint enabled: deliveries resume.")

    return run_action(apply, url_for("admin.webhook_detail", webhook_id=webhook_id))


@admin_bp.post("/webhooks/<webhook_id>/disable")
@permission_required(PERMISSION)
def disable_webhook(webhook_id: str) -> Response:
    endpoint = service.get_endpoint(webhook_id)

    def apply() -> str:
        service.update_endpoint(actor(), endpoint, is_active=False)
        return _("Webhook endpoint disabled: nothing is delivered until it is enabled again.")

    return run_action(apply, url_for("admin.webhook_detail", webhook_id=webhook_id))


@admin_bp.post("/webhooks/<webhook_id>/rotate-secret")
@permission_required(PERMISSION)
@fresh_auth_required
def rotate_webhook_secret(webhook_id: str) -> str:
    endpoint = service.get_endpoint(webhook_id)
    if not confirmed():
        return ask_confirmation(
            _("Rotate the signing secret of %(url)s? The current one keeps working for 24 hours.", url=endpoint.url),
            _("Rotate secret"),
            danger=False,
        )
    secret = service.rotate_secret(actor(), endpoint)
    return _secret_page(endpoint, secret, created=False)


@admin_bp.post("/webhooks/<webhook_id>/test")
@permission_required(PERMISSION)
def test_webhook(webhook_id: str) -> Response:
    endpoint = service.get_endpoint(webhook_id)

    def apply() -> str:
        service.send_test(actor(), endpoint)
        return _("A test event is on its way; its delivery is listed below.")

    return run_action(apply, url_for("admin.webhook_detail", webhook_id=webhook_id))


@admin_bp.post("/webhooks/<webhook_id>/delete")
@permission_required(PERMISSION)
def delete_webhook(webhook_id: str) -> Response | str:
    endpoint = service.get_endpoint(webhook_id)
    if not confirmed():
        return ask_confirmation(
            _("Delete the webhook endpoint %(url)s and its delivery log?", url=endpoint.url), _("Delete endpoint")
        )

    def apply() -> str:
        service.delete_endpoint(actor(), endpoint)
        return _("Webhook endpoint %(url)s deleted.", url=endpoint.url)

    # The endpoint's own page is gone: always back to the list, whatever `next` said.
    response = run_action(apply, url_for("admin.webhooks"))
    response.location = url_for("admin.webhooks")
    return response


@admin_bp.post("/webhooks/<webhook_id>/deliveries/<delivery_id>/redeliver")
@permission_required(PERMISSION)
def redeliver_webhook(webhook_id: str, delivery_id: str) -> Response:
    delivery = service.get_delivery(webhook_id, delivery_id)

    def apply() -> str:
        service.redeliver(actor(), delivery)
        return _("The %(event)s event is queued for delivery again.", event=delivery.event_type)

    return run_action(apply, url_for("admin.webhook_detail", webhook_id=webhook_id))
