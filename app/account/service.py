"""What the account page lists: the user's live API sign-ins (refresh-token families)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.audit.service import record
from app.auth.models import RefreshToken
from app.auth.service import revoke_family
from app.core.database import UTCDateTime, utcnow
from app.extensions import db


@dataclass(frozen=True)
class ApiSignIn:
    family_id: str
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime | None


def api_sign_ins(user_id: int) -> list[ApiSignIn]:
    rows = db.session.execute(
        select(
            RefreshToken.family_id,
            func.max(RefreshToken.user_agent),
            func.min(RefreshToken.created_at),
            func.max(RefreshToken.last_used_at),
        )
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > utcnow())
        .group_by(RefreshToken.family_id)
        .order_by(func.min(RefreshToken.created_at).desc())
    ).all()

    as_utc = UTCDateTime().process_result_value
    return [
        ApiSignIn(family, agent, as_utc(created, None), as_utc(used, None)) for family, agent, created, used in rows
    ]


def revoke_api_sign_in(user_id: int, family_id: str) -> bool:
    """Revoke one of the user's API sign-ins: its refresh tokens and its access tokens."""
    revoked = revoke_family(family_id, user_id=user_id)
    if revoked:
        record("api_sign_in_revoked", actor_id=user_id, subject_id=user_id)
    db.session.commit()
    return bool(revoked)
