"""Failures for demo jobs, as a worker would record them: `error` and `traceback`.

`error` is the sentence people see (app.jobs.service.failure_message, from the same code the
tasks use to explain their failures); the exception, with its cause, is in `traceback` only.
The frames are this checkout's real code (file, line and source text are looked up, so they
stay right when the code moves). Processing failures go further: the demo's corrupt file is
really parsed, so the library frames and the message are exactly what a reprocess would hit.
"""

from __future__ import annotations

import inspect
import io
import logging
import traceback as tracebacks
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import NotFound
from app.jobs.periodic import get_periodic, run_recorded
from app.jobs.service import TaskFailed, failure_message
from app.mail.service import deliver
from app.uploads import sandbox, service
from tasks.emails import explain_delivery_failure, send_email
from tasks.maintenance import run_periodic_now
from tasks.runtime import _run_with_lease
from tasks.uploads import process_upload

HEADER = "Traceback (most recent call last):\n"
CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"


@dataclass(frozen=True)
class Failure:
    error: str  # what `jobs.error` holds: the failure in words for people
    traceback: str  # the exception (and its cause) with its frames


def _explained(cause_trace: str, frame: str, kind: type[BaseException], message: str) -> Failure:
    """A library error re-raised in words (`raise TaskFailed(...) from error`), as tasks do."""
    name = f"{kind.__module__}.{kind.__qualname__}"
    return Failure(message, cause_trace + CAUSE + HEADER + frame + f"{name}: {message}\n")


def _frame(function: Callable[..., Any], needle: str) -> str:
    """One traceback frame: the line of `function` containing `needle` (its first line if none)."""
    function = inspect.unwrap(function)
    lines, start = inspect.getsourcelines(function)
    offset = next((index for index, line in enumerate(lines) if needle in line), 0)
    filename = inspect.getsourcefile(function)
    return f'  File "{filename}", line {start + offset}, in {function.__name__}\n    {lines[offset].strip()}\n'


def _worker_frames(task: Any, needle: str) -> list[str]:
    """What every job traceback starts with: the worker's call into the task body."""
    return [_frame(_run_with_lease, "func(job_id=job.id, **job.payload)"), _frame(task.func, needle)]


def _send_email_frames() -> list[str]:
    return _worker_frames(send_email, "deliver(message)")


def _delivery_failure(error: BaseException, trace: str) -> Failure:
    """What the emails task records for a delivery that raised `error` (traced by `trace`)."""
    frame = "".join(_worker_frames(send_email, "raise TaskFailed("))
    return _explained(trace, frame, TaskFailed, explain_delivery_failure(error))


def smtp_recipient_refused(address: str) -> Failure:
    """The relay refuses the recipient (a permanent 550: retries cannot help)."""
    import smtplib

    refusal = {address: (550, f"5.1.1 <{address}>: Recipient address rejected: User unknown".encode())}
    frames = [
        *_send_email_frames(),
        _frame(deliver, "client.send_message(message)"),
        _frame(smtplib.SMTP.send_message, "return self.sendmail("),
        _frame(smtplib.SMTP.sendmail, "raise SMTPRecipientsRefused(senderrs)"),
    ]
    trace = HEADER + "".join(frames) + f"smtplib.SMTPRecipientsRefused: {refusal}\n"
    return _delivery_failure(smtplib.SMTPRecipientsRefused(refusal), trace)


def smtp_disconnected() -> Failure:
    """The relay hangs up in the middle of DATA (transient: the next attempt usually works)."""
    import smtplib

    frames = [
        *_send_email_frames(),
        _frame(deliver, "client.send_message(message)"),
        _frame(smtplib.SMTP.send_message, "return self.sendmail("),
        _frame(smtplib.SMTP.sendmail, "(code, resp) = self.data(msg)"),
        _frame(smtplib.SMTP.data, "(code, msg) = self.getreply()"),
        _frame(smtplib.SMTP.getreply, 'raise SMTPServerDisconnected("Connection unexpectedly closed")'),
    ]
    message = "Connection unexpectedly closed"
    trace = HEADER + "".join(frames) + f"smtplib.SMTPServerDisconnected: {message}\n"
    return _delivery_failure(smtplib.SMTPServerDisconnected(message), trace)


def smtp_timeout() -> Failure:
    """The relay does not answer the connection in time."""
    import smtplib
    import socket

    frames = [
        *_send_email_frames(),
        _frame(deliver, "client = smtplib.SMTP(target.host"),
        _frame(smtplib.SMTP.__init__, "(code, msg) = self.connect(host, port)"),
        _frame(smtplib.SMTP.connect, "self.sock = self._get_socket("),
        _frame(smtplib.SMTP._get_socket, "return socket.create_connection("),
        _frame(socket.create_connection, "raise exceptions[0]"),
        _frame(socket.create_connection, "sock.connect(sa)"),
    ]
    return _delivery_failure(TimeoutError("timed out"), HEADER + "".join(frames) + "TimeoutError: timed out\n")


def unknown_periodic_task(name: str) -> Failure:
    """An admin's "run now" of a periodic task that a later release removed."""
    frames = [
        *_worker_frames(run_periodic_now, "run_recorded(name)"),
        _frame(run_recorded, "task = get_periodic(name)"),
        _frame(get_periodic, "raise NotFound("),
    ]
    message = f"No periodic task named {name!r}."
    return Failure(failure_message(NotFound(message)), HEADER + "".join(frames) + f"app.errors.NotFound: {message}\n")


def processing_failure(content_type: str, data: bytes) -> Failure:
    """What processing the (corrupt) `data` really raises, framed as the uploads worker's attempt."""
    if content_type == "application/pdf":
        from pypdf import PdfReader

        steps = [_frame(service.process, "details |= _pdf_details(data)"), _frame(service._pdf_details, "PdfReader(")]
        parse: Callable[[], Any] = lambda: PdfReader(io.BytesIO(data))  # noqa: E731
    else:
        from PIL import Image

        steps = [
            _frame(service.process, "details |= _image_details(upload, data)"),
            _frame(service._image_details, "Image.open("),
        ]
        parse = lambda: Image.open(io.BytesIO(data))  # noqa: E731
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # pypdf warns on stderr about the file it then fails on
    try:
        parse()
    except Exception as error:  # whatever the parser raises is the failure being recorded
        library = [frame for frame in tracebacks.extract_tb(error.__traceback__) if frame.filename != __file__]
        frames = [*_worker_frames(process_upload, "uploads.process(upload_id"), *steps]
        trace = HEADER + "".join(frames) + "".join(tracebacks.StackSummary.from_list(library).format())
        trace += "".join(tracebacks.format_exception_only(error))
        # The sandbox reports the child's error as the cause of a ProcessingError in words.
        operation = "pdf" if content_type == "application/pdf" else "image"
        frame = _frame(service.process, "details |= _pdf_details(data)" if operation == "pdf" else "details |= _image")
        return _explained(trace, frame, sandbox.ProcessingError, sandbox.UNREADABLE[operation])
    finally:
        pypdf_log.setLevel(level)
    raise ValueError(f"the demo's corrupt {content_type} file parsed without an error")
