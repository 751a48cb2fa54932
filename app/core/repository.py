"""The repository pattern of seed §7, as one small generic base.

A repository owns the queries for one model; services call it and decide when to commit.
Repositories never commit: one unit of work commits once, in the service.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from app.extensions import db

ModelT = TypeVar("ModelT")

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page(Generic[ModelT]):
    """One page of results plus what a client needs to fetch the others."""

    items: Sequence[ModelT]
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


class Repository(Generic[ModelT]):
    """Common queries over `model`. Subclasses add the named finders their feature needs."""

    model: type[ModelT]

    @property
    def session(self):
        return db.session

    def get(self, entity_id: Any) -> ModelT | None:
        return self.session.get(self.model, entity_id)

    def find_one_by(self, **filters: Any) -> ModelT | None:
        return self.session.scalars(select(self.model).filter_by(**filters).limit(1)).first()

    def add(self, entity: ModelT) -> ModelT:
        self.session.add(entity)
        return entity

    def delete(self, entity: ModelT) -> None:
        self.session.delete(entity)

    def paginate(self, statement: Select, page: int = 1, per_page: int = DEFAULT_PAGE_SIZE) -> Page[ModelT]:
        """Run `statement` for one page; the count query reuses its filters without its order."""
        page, per_page = clamp_page(page, per_page)
        total = self.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
        items = self.session.scalars(statement.limit(per_page).offset((page - 1) * per_page)).all()
        return Page(items=items, page=page, per_page=per_page, total=total)

    def list(
        self, page: int = 1, per_page: int = DEFAULT_PAGE_SIZE, order_by: Any = None, **filters: Any
    ) -> Page[ModelT]:
        statement = select(self.model).filter_by(**filters)
        if order_by is not None:
            statement = statement.order_by(order_by)
        return self.paginate(statement, page, per_page)
