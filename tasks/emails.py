"""Tasks of the `emails` queue."""

from __future__ import annotations

import smtplib
from typing import Any

from app.jobs.service import TaskFailed
from app.mail.service import deliver, render_message
from tasks.runtime import durable_task


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    # Template context may hold links with tokens: only the recipient and template are shown.
    return {"to": payload["to"], "template": payload["template"]}


def explain_delivery_failure(error: BaseException) -> str:
    """The delivery failure in words for the job's pages (the exception stays in its traceback)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "The mail server refused the recipient's address."
    if isinstance(error, smtplib.SMTPSenderRefused):
        return "The mail server refused the sender's address (MAIL_FROM)."
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return "The mail server did not accept the credentials in SMTP_URL."
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return "The mail server closed the connection before the message was sent."
    if isinstance(error, smtplib.SMTPException):
        return "The mail server refused the message."
    if isinstance(error, TimeoutError):
        return "The mail server did not answer in time."
    return "The mail server could not be reached."


@durable_task("emails", summarize=_summary)
def send_email(*, job_id: str, to: str, template: str, context: dict[str, Any]) -> None:
    """Render `template` for `to` and deliver it over SMTP."""
    message = render_message(to, template, context, message_key=job_id)
    try:
        deliver(message)
    except (smtplib.SMTPException, OSError) as error:  # retried by the queue's policy, explained
        raise TaskFailed(explain_delivery_failure(error)) from error
