"""Pagination as a plain function over any SELECT (docs/architecture.md §7): each domain's
queries build the statement, `paginate` runs one page of it and counts the rest."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select, func, select

from app.extensions import db

ItemT = TypeVar("ItemT")

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of results plus what a client needs to fetch the others."""

    items: Sequence[ItemT]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page)) if self.per_page else 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def clamp_page(page: int, per_page: int) -> tuple[int, int]:
    """Bounded paging: page ≥ 1, 1 ≤ per_page ≤ MAX_PAGE_SIZE."""
    return max(1, page), min(max(1, per_page), MAX_PAGE_SIZE)


def count_rows(statement: Select) -> int:
    """How many rows `statement` gives: one count query over its filters, without its order."""
    return db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0


def paginate(statement: Select, page: int = 1, per_page: int = DEFAULT_PAGE_SIZE) -> Page:
    """Run `statement` for one page; the count query reuses its filters (`count_rows`)."""
    page, per_page = clamp_page(page, per_page)
    session = db.session
    total = count_rows(statement)
    items = session.scalars(statement.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(items=items, page=page, per_page=per_page, total=total)
