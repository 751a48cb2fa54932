"""Passkeys (WebAuthn). STUB placed by the lead so imports work while H2 builds it: H2 replaces this file."""

from __future__ import annotations

from typing import Any


def list_for(user_id: int) -> list[Any]:
    return []


def registration_options(user: Any) -> str:
    return "{}"


def authentication_options(purpose: str, user: Any = None) -> str:
    return "{}"
