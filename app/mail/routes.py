"""`/dev/mail`: the development mailbox (registered only when APP_ENV=development)."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from flask import Blueprint, abort, current_app, render_template

from app.mail.html import sanitized_html

dev_mail_bp = Blueprint("dev_mail", __name__, url_prefix="/dev/mail")
MAILBOX_LIMIT = 200


def _read(path, parts: bool = False):
    """A stored message's headers; with `parts`, also its plain text and its HTML part (made
    safe to show in the page, links kept: app/mail/html.py)."""
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    read = {
        "key": path.stem,
        "subject": message["Subject"],
        "to": message["To"],
        "from": message["From"],
        "date": message["Date"],
    }
    if parts:
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        read["body"] = text.get_content() if text else ""
        read["html"] = sanitized_html(html.get_content()) if html else None
    return read


@dev_mail_bp.get("/")
def inbox() -> str:
    mailbox = current_app.extensions["hearth.settings"].dev_mailbox
    paths = sorted(mailbox.glob("*.eml"), reverse=True)[:MAILBOX_LIMIT] if mailbox.exists() else []
    return render_template("dev/mail.html", messages=[_read(path) for path in paths])


@dev_mail_bp.get("/<key>")
def message(key: str) -> str:
    path = current_app.extensions["hearth.settings"].dev_mailbox / f"{key}.eml"
    if not key.replace("T", "").isdigit() or not path.is_file():
        abort(404)
    return render_template("dev/mail_message.html", message=_read(path, parts=True))
