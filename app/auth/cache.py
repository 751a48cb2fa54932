"""What is cached about API sign-ins, with its named invalidator beside it.

- `family_accepted(family_id, user_id)`: key `token-family:{family_id}`, L1 and L2, 5 minutes;
  invalidator `forget_family(family_id)`, called by every path that revokes a family
  (app.auth.service: API logout, reuse detection, the account page, sign out everywhere).

Every access token names its sign-in's refresh-token family (claim `fam`), so revoking the
family refuses its access tokens at once instead of when they expire. A cache hit costs no
database query on the API's hot path.
"""

from __future__ import annotations

from app.auth.repository import RefreshTokenRepository
from app.cache import CacheKey, cached, invalidate

FAMILY_STATE = "token-family"
FAMILY_TTL = 300
FAMILY_ID_LENGTH = 36  # a UUID4, as app.auth.service makes them

refresh_tokens = RefreshTokenRepository()


def family_accepted(family_id: object, user_id: int) -> bool:
    """Whether the sign-in `family_id` of `user_id` is live: not logged out, not revoked on the
    account page or by reuse detection or sign out everywhere. Cached (the family's owner, or
    None once revoked) and dropped by `forget_family` after the revoking commit."""
    if not isinstance(family_id, str) or not family_id or len(family_id) > FAMILY_ID_LENGTH:
        return False
    owner = cached(
        CacheKey(FAMILY_STATE, family_id), lambda: _live_family_owner(family_id), timeout=FAMILY_TTL, local=True
    )
    return owner == user_id


def _live_family_owner(family_id: str) -> int | None:
    # A family is live while one member is unrevoked: rotation revokes the presented token and
    # adds its successor in one commit, and revoking a family revokes every member. Expiry needs
    # no check: each access token is issued with a refresh token that outlives it by far.
    return refresh_tokens.live_family_owner(family_id)


def forget_family(family_id: str) -> None:
    invalidate(CacheKey(FAMILY_STATE, family_id))
