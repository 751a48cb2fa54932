"""The upload form of /files: a plain multipart POST that works without JavaScript
(static/js/uploads.js takes over its submit to send the bytes straight to storage)."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from flask_wtf.file import FileField, FileRequired
from jinja2.nodes import EvalContext
from markupsafe import Markup
from wtforms import SelectChoice, SelectField

from app.i18n import _, _l, current_locale, format_number
from app.uploads.models import KIND_LABELS
from app.uploads.service import MB

# What each kind holds, in the picker (its name is the uploads domain's, KIND_LABELS: the same
# word on every page); the limit comes from configuration.
KIND_FORMATS = {
    "avatar": _l("JPEG, PNG, WebP, GIF"),
    "document": _l("PDF, text, office"),
    "video": _l("MP4, WebM, QuickTime"),
}


def kind_choices(limits: dict[str, tuple[int, list[str]]]) -> list[SelectChoice]:
    """One option per kind, e.g. `avatar` labelled "Avatar (JPEG, PNG, WebP, GIF; up to 5 MB)"."""
    return [
        SelectChoice(
            kind,
            _(
                "%(kind)s (%(formats)s; up to %(size)s MB)",
                kind=KIND_LABELS.get(kind, kind.capitalize()),
                formats=KIND_FORMATS[kind],
                size=megabytes(max_bytes),
            ),
        )
        for kind, (max_bytes, _types) in limits.items()
    ]


def megabytes(size: int) -> str:
    """A limit in megabytes for people: whole where it is ("5"), else to one decimal ("0.5")."""
    value = size / MB
    whole = value >= 1 and abs(value - round(value)) < 0.05
    return format_number(round(value) if whole else value, decimals=0 if whole else 1)


class UploadForm(FlaskForm):
    # The kind comes first: a browser sends fields in order, so it arrives before the file.
    kind = SelectField(_l("Kind"), id="upload-kind")
    file = FileField(
        _l("Choose a file or drop it here"), id="upload-file", validators=[FileRequired(_l("Choose a file first."))]
    )

    def __init__(self, limits: dict[str, tuple[int, list[str]]], **kwargs):
        super().__init__(**kwargs)
        self.kind.choices = kind_choices(limits)


# A blank form (the page's GET) renders the same two fields for every request in a language:
# built once per (language, limits) and reused, rather than binding an UploadForm and rendering
# its fields through the `field` macro on every page view (~0.4 ms). A form with the reader's
# input or errors (a failed POST) is still an UploadForm, rendered by the template.
_BLANK_FIELDS: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[Markup, Markup]] = {}


def blank_fields(limits: dict[str, tuple[int, list[str]]]) -> tuple[Markup, Markup]:
    """The kind picker and the file input of a blank form, each as templates/_forms.html's
    `field` renders it (the same HTML, byte for byte)."""
    key = (str(current_locale()), tuple((kind, max_bytes) for kind, (max_bytes, _types) in limits.items()))
    fields = _BLANK_FIELDS.get(key)
    if fields is None:
        form = UploadForm(limits, formdata=None, meta={"csrf": False})
        field = current_app.jinja_env.get_template("_forms.html").module.field
        fields = _BLANK_FIELDS[key] = (field(form.kind), field(form.file))
    return fields


def csrf_input() -> Markup:
    """What `form.hidden_tag()` writes for a FlaskForm whose only hidden field is the CSRF
    token: the input with this session's token, or nothing where CSRF protection is off."""
    config = current_app.config
    if not config.get("WTF_CSRF_ENABLED", True):
        return Markup("")
    name = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    return Markup('<input id="{0}" name="{0}" type="hidden" value="{1}">').format(
        name, generate_csrf(config.get("WTF_CSRF_SECRET_KEY"), name)
    )


# What static/js/uploads.js says, in the reader's language: it puts the values in place of
# __SIZE__, __TYPE__, __STATUS__ and __NAME__ (as text, never as HTML). The page carries them as
# JSON in `data-messages`, written once per language (`tojson`, as the template would).
_MESSAGES_JSON: dict[str, Markup] = {}


def upload_messages_json() -> Markup:
    """The upload widget's messages as the `tojson` filter writes them, built once per language."""
    language = str(current_locale())
    written = _MESSAGES_JSON.get(language)
    if written is None:
        messages = {
            "choose": _("Choose a file first."),
            "too_large": _("The file is larger than %(size)s MB.", size="__SIZE__"),
            "type_refused": _("Files of type %(type)s are not accepted here.", type="__TYPE__"),
            "unknown_type_refused": _("Files of this type are not accepted here."),
            "uploading": _("Uploading %(name)s…", name="__NAME__"),
            "uploaded": _("%(name)s uploaded.", name="__NAME__"),
            "refused": _("The upload was refused."),
            "storage_refused": _("The storage refused the file (%(status)s).", status="__STATUS__"),
            "connection": _("The upload failed; check your connection."),
            "not_confirmed": _("The upload could not be confirmed."),
        }
        env = current_app.jinja_env
        written = _MESSAGES_JSON[language] = env.filters["tojson"](EvalContext(env), messages)
    return written
