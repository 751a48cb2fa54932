"""Authenticator apps (TOTP, RFC 6238: 30 s steps, 6 digits, one step of drift either way)
and single-use recovery codes: the secrets, their storage and the checks of a code.

The shared secret is stored encrypted (app.core.secrets, purpose `hearth totp v1`); a code is
accepted only for a time step later than the last accepted one, by compare-and-set, so a code
seen over a shoulder or replayed by a proxy is refused within its window. Recovery codes are
16 base32 characters (80 bits, shown as four groups of four) stored only as SHA-256 hashes
bound to their account, and each works once.

The policy around these (who may enrol, auditing, lockout, notifications) is
app.auth.second_factor's; nothing here commits outside the caller's unit of work.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, or_, select, update

from app.auth.models import RecoveryCode, TotpCredential
from app.core.database import utcnow
from app.core.repository import Repository
from app.core.secrets import SecretUnreadable, decrypt, encrypt
from app.core.unit_of_work import unit_of_work
from app.logging import get_logger

DIGITS = 6
INTERVAL = 30
VALID_WINDOW = 1  # steps of clock drift accepted either way
SECRET_PURPOSE = b"hearth totp v1"
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 16  # base32 characters: 80 bits
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
# ASCII digits only: `\d` also matches other scripts' digits, which compare_digest refuses (a 500).
TOTP_FORMAT = re.compile(rf"[0-9]{{{DIGITS}}}")
RECOVERY_FORMAT = re.compile(rf"[a-z2-7]{{{RECOVERY_CODE_LENGTH}}}")
SEPARATORS = re.compile(r"[\s\-_.]+")

log = get_logger("hearth.auth.totp")


class TotpRepository(Repository[TotpCredential]):
    """`totp_credentials`: one authenticator app per user (its primary key is the user id)."""

    model = TotpCredential

    def claim_step(self, user_id: int, step: int, now: datetime) -> bool:
        """Accept `step` for the user's confirmed app unless that step or a later one was
        already accepted (compare-and-set: of two requests with one code, one wins)."""
        result = self.session.execute(
            update(TotpCredential)
            .where(
                TotpCredential.user_id == user_id,
                TotpCredential.confirmed_at.is_not(None),
                or_(TotpCredential.last_used_step.is_(None), TotpCredential.last_used_step < step),
            )
            .values(last_used_step=step, last_used_at=now)
        )
        return result.rowcount == 1


class RecoveryCodeRepository(Repository[RecoveryCode]):
    """`recovery_codes`: hashes of the user's single-use codes."""

    model = RecoveryCode

    def delete_all_of(self, user_id: int) -> None:
        self.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    def claim(self, user_id: int, code_hash: str, now: datetime) -> bool:
        """Mark the unused code `code_hash` of the user used (compare-and-set); whether it was."""
        result = self.session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == code_hash, RecoveryCode.used_at.is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1

    def unused_count(self, user_id: int) -> int:
        return self.session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )


credentials = TotpRepository()
recovery_codes = RecoveryCodeRepository()


@dataclass(frozen=True)
class Enrolment:
    """An authenticator app being added: its secret (base32) and the otpauth:// URI of the QR code."""

    secret: str
    otpauth_uri: str


# Codes as typed -------------------------------------------------------------------------------


def normalised(code: str) -> str:
    """A code as typed, without spaces or dashes, lower-case."""
    return SEPARATORS.sub("", code or "").lower()


def looks_like_totp(code: str) -> bool:
    return TOTP_FORMAT.fullmatch(code) is not None


def looks_like_recovery_code(code: str) -> bool:
    return RECOVERY_FORMAT.fullmatch(code) is not None


# Authenticator apps --------------------------------------------------------------------------


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(name=account, issuer_name=issuer)


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step (of now ± VALID_WINDOW) whose code is `code`, else None."""
    if not looks_like_totp(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    now_step = totp.timecode(time.time() if at is None else at)
    for step in (now_step, now_step - 1, now_step + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def credential_of(user_id: int) -> TotpCredential | None:
    return credentials.get(user_id)


def secret_of(credential: TotpCredential) -> str:
    """The decrypted secret (SecretUnreadable if SECRET_KEY changed since it was stored)."""
    return decrypt(credential.secret_encrypted, SECRET_PURPOSE)


def store_new_secret(user_id: int) -> str:
    """A new unconfirmed secret for the user, replacing an unconfirmed one (caller's unit)."""
    secret = pyotp.random_base32()  # 160 bits
    with unit_of_work():
        existing = credentials.get(user_id)
        if existing is None:
            credentials.add(TotpCredential(user_id=user_id, secret_encrypted=encrypt(secret, SECRET_PURPOSE)))
        else:
            existing.secret_encrypted = encrypt(secret, SECRET_PURPOSE)
            existing.created_at = utcnow()
            existing.confirmed_at = None
            existing.last_used_step = None
            existing.last_used_at = None
    return secret


def confirm(credential: TotpCredential, step: int) -> None:
    """The app proved it holds the secret with the code of `step` (which is then used up)."""
    now = utcnow()
    with unit_of_work():
        credential.confirmed_at = now
        credential.last_used_step = step
        credential.last_used_at = now


def accept_code(user_id: int, code: str) -> bool:
    """Whether `code` is a current code of the user's confirmed app, used now (never again)."""
    credential = credentials.get(user_id)
    if credential is None or credential.confirmed_at is None:
        return False
    try:
        secret = secret_of(credential)
    except SecretUnreadable:
        # SECRET_KEY changed since it was stored (docs/configuration.md): recovery codes still work.
        log.warning("totp_secret_unreadable")
        return False
    step = matching_step(secret, code)
    if step is None:
        return False
    with unit_of_work():
        return credentials.claim_step(user_id, step, utcnow())


def remove(user_id: int) -> bool:
    """Forget the user's app (caller's unit); whether there was one."""
    with unit_of_work():
        credential = credentials.get(user_id)
        if credential is None:
            return False
        credentials.delete(credential)
    return True


def is_confirmed(user_id: int) -> bool:
    credential = credentials.get(user_id)
    return credential is not None and credential.confirmed_at is not None


# Recovery codes ------------------------------------------------------------------------------


def _hash(user_id: int, code: str) -> str:
    return hashlib.sha256(f"hearth recovery code:{user_id}:{code}".encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


def new_recovery_codes(user_id: int) -> list[str]:
    """A new set of RECOVERY_CODE_COUNT codes replacing the old set (caller's unit). The codes
    are returned once, here; only their hashes are stored."""
    codes = [_new_code() for _ in range(RECOVERY_CODE_COUNT)]
    with unit_of_work() as session:
        recovery_codes.delete_all_of(user_id)
        session.flush()
        for code in codes:
            recovery_codes.add(RecoveryCode(user_id=user_id, code_hash=_hash(user_id, normalised(code))))
    return codes


def use_recovery_code(user_id: int, code: str) -> bool:
    """Whether `code` (normalised) is an unused recovery code of the user; it is used up now."""
    if not looks_like_recovery_code(code):
        return False
    with unit_of_work():
        return recovery_codes.claim(user_id, _hash(user_id, code), utcnow())


def remaining_recovery_codes(user_id: int) -> int:
    return recovery_codes.unused_count(user_id)


def remove_recovery_codes(user_id: int) -> None:
    with unit_of_work():
        recovery_codes.delete_all_of(user_id)
