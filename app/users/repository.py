"""Queries over users."""

from __future__ import annotations

from app.core.repository import Repository
from app.users.models import User


class UserRepository(Repository[User]):
    model = User

    def find_by_email(self, email: str) -> User | None:
        return self.find_one_by(email=normalise_email(email))


def normalise_email(email: str) -> str:
    return email.strip().lower()
