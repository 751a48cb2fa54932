"""The repository pattern of docs/architecture.md §7, as one small generic base.

A repository owns the queries for one model; services call it inside their unit of work
(app.core.unit_of_work). Repositories never commit. Pagination is app.core.pagination.paginate.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select

from app.core.pagination import DEFAULT_PAGE_SIZE, Page, paginate
from app.extensions import db

ModelT = TypeVar("ModelT")


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
        return paginate(statement, page, per_page)

    def list(
        self, page: int = 1, per_page: int = DEFAULT_PAGE_SIZE, order_by: Any = None, **filters: Any
    ) -> Page[ModelT]:
        statement = select(self.model).filter_by(**filters)
        if order_by is not None:
            statement = statement.order_by(order_by)
        return self.paginate(statement, page, per_page)
