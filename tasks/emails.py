"""Tasks of the `emails` queue."""

from __future__ import annotations

from typing import Any

from app.mail.service import deliver, render_message
from tasks.runtime import durable_task


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    # Template context may hold links with tokens: only the recipient and template are shown.
    return {"to": payload["to"], "template": payload["template"]}


@durable_task("emails", summarize=_summary)
def send_email(*, job_id: str, to: str, template: str, context: dict[str, Any]) -> None:
    """Render `template` for `to` and deliver it over SMTP."""
    deliver(render_message(to, template, context, message_key=job_id))
