"""Glue between service errors and WTForms forms."""

from __future__ import annotations

from flask_wtf import FlaskForm

from app.errors import ValidationFailed


def apply_service_errors(form: FlaskForm, error: ValidationFailed) -> None:
    """Show a service's field errors on the matching form fields (else on the first field)."""
    errors = error.extra.get("errors") or [{"field": None, "message": error.detail}]
    for item in errors:
        field = getattr(form, item.get("field") or "", None) or next(iter(form))
        field.errors = [*field.errors, item["message"]]
