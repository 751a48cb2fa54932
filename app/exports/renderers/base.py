"""What every renderer is given and promises (the contract the exports service calls), and the
few helpers they share: the owner's language, text written into the binary output, progress."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from app.i18n import force_locale, locale_of
from app.users.repository import UserRepository

users = UserRepository()

CHUNK = 256 * 1024  # what a renderer copies at a time (an uploaded file into the ZIP)


@dataclass(frozen=True)
class RenderContext:
    """One export being built: whose it is, its validated filters (JSON-safe, the shape of its
    kind), where to report progress, and when it was asked to be generated (UTC)."""

    user_id: int
    filters: dict[str, Any]
    progress: Callable[[int, int], None]  # progress(done, total): the service shows it to people
    generated_at: datetime


@dataclass(frozen=True)
class Renderer:
    """A kind's document: `render(context, out)` writes the whole of it to `out` (a temporary
    file opened "w+b", seekable) and raises if it cannot; the service stores the file only
    when it returns. Renderers read inside the caller's app context and never write."""

    render: Callable[[RenderContext, BinaryIO], None]
    content_type: str
    extension: str  # "zip", "csv", "xlsx", "pdf"
    title: str  # for people, marked with N_ (translated where shown)


@contextmanager
def owners_language(user_id: int) -> Iterator[None]:
    """Write the document in the language its owner reads Hearth in (`users.locale`, else
    English: a worker has no request to negotiate from)."""
    with force_locale(locale_of(users.get_principal(user_id))):
        yield


@contextmanager
def text_output(out: BinaryIO) -> Iterator[io.TextIOWrapper]:
    """`out` as UTF-8 text for the csv module (newline="" as it requires); `out` stays open."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        yield text
    finally:
        text.flush()
        text.detach()


class Progress:
    """Counts work done towards a total known up front and reports it: at the start (0, total),
    at most once per `step()` call, and (total, total) at the end, even when fewer rows came
    than counted (some were deleted meanwhile) or more (never past the total)."""

    def __init__(self, report: Callable[[int, int], None], total: int):
        self.report, self.total, self.done = report, max(total, 0), 0
        self.report(0, self.total)

    def step(self, count: int = 1) -> None:
        self.done += count
        self.report(min(self.done, self.total), self.total)

    def finish(self) -> None:
        self.report(self.total, self.total)
