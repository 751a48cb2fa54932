"""What is cached about users (seed §8), each with its named invalidator beside it.

- `user_profile(id)`: key `user:{id}`, 5 minutes; invalidator `forget_user(id)`.
- `user_page(...)`: pages of the user list, namespace `users`, 60 s; invalidator
  `forget_user_lists()` (bumps the namespace: every page of every filter goes stale at once).
- `status_counts()` / `signups_since()` for the admin dashboard, namespace `users`, 30 s.

Every write to a user goes through the ORM, so one `before_flush` listener calls the
invalidators for each new, changed or deleted user: no write path can forget to. They run
after the commit (app.cache.aside).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.cache import CacheKey, bump, cached, invalidate
from app.core.repository import Page, Repository
from app.users.models import User
from app.users.repository import user_list_statement

PROFILE_TTL = 300
LIST_TTL = 60
COUNTS_TTL = 30
USERS_NAMESPACE = "users"


def user_profile(user_id: int, serialize: Callable[[User], Any], load: Callable[[int], User]) -> Any:
    """`serialize(load(user_id))`, cached under `user:{id}`."""
    return cached(CacheKey("user", str(user_id)), lambda: serialize(load(user_id)), timeout=PROFILE_TTL)


def forget_user(user_id: int) -> None:
    invalidate(CacheKey("user", str(user_id)))
    invalidate(CacheKey(SIGN_IN_STATE, str(user_id)))


SIGN_IN_STATE = "sign-in-state"


def token_accepted(user_id: int, epoch: object) -> bool:
    """Whether an access token for `user_id` minted at session `epoch` is still good: the
    account exists, is active and not deleted, and the epoch is current. (active, epoch) is
    cached in L1 and L2 and dropped by `forget_user` on any change to the user."""
    state = cached(
        CacheKey(SIGN_IN_STATE, str(user_id)), lambda: _token_state(user_id), timeout=PROFILE_TTL, local=True
    )
    return state is not None and state[0] and state[1] == epoch


def _token_state(user_id: int) -> tuple[bool, int] | None:
    from sqlalchemy import select

    from app.extensions import db

    row = db.session.execute(
        select(User.is_active_account, User.deleted_at, User.session_epoch).where(User.id == user_id)
    ).first()
    if row is None:
        return None
    return (bool(row.is_active_account) and row.deleted_at is None, row.session_epoch)


def user_page(filters: dict[str, Any], page: int, per_page: int, serialize: Callable[[User], Any]) -> Page:
    """One page of the filtered user list with its items serialized, cached per query."""
    signature = "&".join(f"{name}={filters[name]}" for name in sorted(filters))
    key = CacheKey(USERS_NAMESPACE, f"page:{serialize.__qualname__}:{signature}:{page}:{per_page}")

    def compute() -> Page:
        rows = Repository().paginate(user_list_statement(**filters), page, per_page)
        return Page(
            items=[serialize(user) for user in rows.items], page=rows.page, per_page=rows.per_page, total=rows.total
        )

    return cached(key, compute, timeout=LIST_TTL)


def forget_user_lists() -> None:
    """Invalidator of `user_page` and the dashboard's user counts."""
    bump(USERS_NAMESPACE)


def dashboard_counts(compute: Callable[[], dict[str, int]], name: str) -> dict[str, int]:
    return cached(CacheKey(USERS_NAMESPACE, f"counts:{name}"), compute, timeout=COUNTS_TTL)


@event.listens_for(Session, "before_flush")
def _forget_changed_users(session: Session, flush_context, instances) -> None:
    changed = [obj for obj in (*session.new, *session.dirty, *session.deleted) if isinstance(obj, User)]
    if not changed:
        return
    forget_user_lists()
    for user in changed:
        if user.id is not None:
            forget_user(user.id)
