"""Tasks of the `emails` queue."""

from __future__ import annotations

import smtplib
from typing import Any

from app.i18n import N_
from app.jobs.service import PermanentFailure, TaskFailed
from app.mail.service import deliver, render_message
from tasks.runtime import durable_task


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    # Template context may hold links with tokens: only the recipient and template are shown.
    return {"to": payload["to"], "template": payload["template"]}


def explain_delivery_failure(error: BaseException) -> str:
    """The delivery failure in words for the job's pages (the exception stays in its traceback).
    Stored with the job in English and translated where it is shown (app.i18n `translate_stored`)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return N_("The mail server refused the recipient's address.")
    if isinstance(error, smtplib.SMTPSenderRefused):
        return N_("The mail server refused the sender's address (MAIL_FROM).")
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return N_("The mail server did not accept the credentials in SMTP_URL.")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return N_("The mail server closed the connection before the message was sent.")
    if isinstance(error, smtplib.SMTPException):
        return N_("The mail server refused the message.")
    if isinstance(error, TimeoutError):
        return N_("The mail server did not answer in time.")
    return N_("The mail server could not be reached.")


def is_permanent_refusal(error: BaseException) -> bool:
    """A 5xx reply is the mail server's last word on this message (RFC 5321 §4.2.1: "do not
    repeat the exact request"): an unknown mailbox stays unknown, so retrying only delays the
    failure and knocks on the relay three more times. Wrong credentials (535) are the
    exception: an operator fixes SMTP_URL and the retries then get through. 4xx replies and
    lost connections are worth retrying."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return False
    if isinstance(error, smtplib.SMTPResponseException):
        return 500 <= error.smtp_code < 600
    return False


@durable_task("emails", summarize=_summary)
def send_email(
    *, job_id: str, to: str, template: str, context: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Render `template` for `to` (with any extra `headers`) and deliver it over SMTP."""
    message = render_message(to, template, context, message_key=job_id, headers=headers)
    try:
        deliver(message)
    except (smtplib.SMTPException, OSError) as error:  # explained; retried by the queue's policy unless final
        failure = PermanentFailure if is_permanent_refusal(error) else TaskFailed
        raise failure(explain_delivery_failure(error)) from error
