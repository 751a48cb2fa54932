"""Render and deliver email. Sending always goes through the `emails` queue (`queue_email`)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template

from app.core.unit_of_work import unit_of_work
from app.i18n import DEFAULT_LOCALE, force_locale
from app.jobs.service import enqueue_task
from app.logging import get_logger
from app.users.service import checked_email

log = get_logger("hearth.mail")
SMTP_TIMEOUT_SECONDS = 10
SEND_EMAIL_TASK = "tasks.emails.send_email"  # queued by name: tasks.emails imports this module
# Header lines may run to RFC 5322's 998 characters before folding: with the default 78, a
# `List-Unsubscribe: <https://…/long-token>` (one word, nowhere to fold) would be turned into
# RFC 2047 encoded words, which no mail client reads as a URL (RFC 8058 needs it as it is).
MESSAGE_POLICY = policy.default.clone(max_line_length=998)
# What render_message sets itself: extra headers may not replace them.
RESERVED_HEADERS = frozenset({"subject", "from", "to", "date", "message-id", "content-type", "mime-version"})


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    mode: str  # "plain", "starttls" or "ssl"

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        mode = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "ssl"}[parts.scheme]
        default_port = {"plain": 25, "starttls": 587, "ssl": 465}[mode]
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            mode=mode,
        )


def render_message(
    to: str,
    template: str,
    context: dict[str, Any],
    message_key: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """Build the message from `templates/email/<template>.{subject.txt,txt,html}`: a
    multipart/alternative of the plain text and its HTML twin (links as `<a>`; every variable
    escaped), in the language `context["locale"]` names (English without one).

    The Message-ID derives from `message_key` (the job id), so a re-run of the same job
    produces the same Message-ID and receiving systems can drop the duplicate. `headers` are
    added as they are (e.g. RFC 8058 `List-Unsubscribe`); they cannot replace the ones set
    here (Subject, From, To, Date, Message-ID).
    """
    settings = current_app.extensions["hearth.settings"]
    with force_locale(context.get("locale") or DEFAULT_LOCALE):
        subject = render_template(f"email/{template}.subject.txt", **context).strip()
        text = render_template(f"email/{template}.txt", **context)
        html = render_template(f"email/{template}.html", **{**context, "subject": subject})
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{message_key}@{_message_id_domain(settings.mail_from)}>"
    for name, value in (headers or {}).items():
        if name.lower() in RESERVED_HEADERS or "\n" in value or "\r" in value:
            raise ValueError(f"header {name!r} cannot be set by a template's caller")
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _message_id_domain(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "hearth.invalid"


def deliver(message: EmailMessage) -> None:
    """Send through SMTP_URL; in development also keep a copy for the /dev/mail page."""
    settings = current_app.extensions["hearth.settings"]
    if settings.is_development:
        store_dev_copy(message, settings.dev_mailbox)
    if not settings.smtp_url:
        log.info("mail_not_sent_no_smtp", to_domain=str(message["To"]).rpartition("@")[2])
        return
    target = SmtpTarget.from_url(settings.smtp_url)
    if target.mode == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        if target.mode == "starttls":
            client.starttls(context=ssl.create_default_context())
        if target.username:
            client.login(target.username, target.password or "")
        client.send_message(message)
    log.info("mail_sent", message_id=message["Message-ID"])


def store_dev_copy(message: EmailMessage, mailbox: Path) -> Path:
    mailbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = mailbox / f"{stamp}.eml"
    path.write_bytes(bytes(message))
    return path


def queue_email(
    to: str,
    template: str,
    context: dict[str, Any] | None = None,
    user_id: int | None = None,
    headers: dict[str, str] | None = None,
):
    """Queue an email in the current unit of work; it is sent once that commits.
    `user_id` is the account it is for (shown on the admin's jobs page); `headers` are extra
    message headers (`render_message`)."""
    extra = {"headers": headers} if headers else {}
    return enqueue_task(SEND_EMAIL_TASK, caused_by=user_id, to=to, template=template, context=context or {}, **extra)


def queue_test_email(address: str):
    """Queue a test message to `address` (`flask mail test`), in a unit of work of its own."""
    with unit_of_work():
        return queue_email(checked_email(address), "test_message", {"address": address})
