"""Personal API keys. STUB placed by the lead so imports work while H3 builds it: H3 replaces this file."""

from __future__ import annotations

from typing import Any


def list_for(user_id: int) -> list[Any]:
    return []


def grantable_scopes(user: Any) -> list[tuple[str, str]]:
    return []
