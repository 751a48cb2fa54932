"""Recent security activity. STUB placed by the lead so imports work while H4 builds it: H4 replaces this file."""

from __future__ import annotations

from typing import Any


def recent_for(user_id: int) -> list[Any]:
    return []
