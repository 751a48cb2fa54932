"""Password hashing (argon2id) and the password policy (NIST SP 800-63B).

argon2-cffi's defaults (RFC 9106 low-memory profile: m=64 MiB, t=3, p=4) exceed the OWASP
minimum (m=19 MiB, t=2, p=1). Hashes made with older parameters are upgraded at login.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import ValidationFailed

MIN_LENGTH = 12
MAX_LENGTH = 1024  # generous for passphrases; bounded so hashing cannot be abused
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "auth" / "data" / "common-passwords.txt"

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both cases cost one argon2 verification.
DUMMY_HASH = _hasher.hash("hearth-dummy-password-for-timing")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text().splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def password_problems(password: str, email: str | None = None) -> list[str]:
    """Why `password` is unacceptable (empty when it is fine). No composition rules."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    if password.lower() in common_passwords():
        problems.append("This password is too common; choose another.")
    if email and password.strip().lower() == email.strip().lower():
        problems.append("The password must not be your email address.")
    return problems


def check_new_password(password: str, email: str | None = None, field: str = "password") -> None:
    problems = password_problems(password, email)
    if problems:
        raise ValidationFailed(
            " ".join(problems),
            errors=[
                {"field": field, "location": "body", "message": message, "type": "password_policy"}
                for message in problems
            ],
        )
