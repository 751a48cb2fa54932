"""Step-up. STUB placed by the lead so imports work while H4 builds it: H4 replaces this file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def fresh_auth_required(view: Callable[..., Any]) -> Callable[..., Any]:
    return view


def is_fresh() -> bool:
    return True


def mark_fresh() -> None:
    return None
