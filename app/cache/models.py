"""`cache_generation`: how the embedded profile's processes tell each other to drop their caches."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class CacheGeneration(db.Model):
    """One row (id 1, written by migration 0008) whose `generation` goes up with every commit
    that invalidates something cached, on the embedded profile only (app.cache.generation).
    Should the row go missing, the next such commit writes it again."""

    __tablename__ = "cache_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)
