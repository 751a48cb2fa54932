"""The upload form of /files: a plain multipart POST that works without JavaScript
(static/js/uploads.js takes over its submit to send the bytes straight to storage)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectChoice, SelectField

from app.i18n import _, _l, format_number
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
