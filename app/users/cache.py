"""What is cached about users (docs/architecture.md §8), each with its named invalidator beside it.

- `user_profile(id)`: key `user:{id}`, 5 minutes; invalidator `forget_user(id)`.
- `user_page(...)`: pages of the user list as rendered by the caller, namespace `users`, 60 s,
  in L1 too; invalidator `forget_user_lists()` (bumps the namespace: every page of every filter
  goes stale at once, on every instance).
- `dashboard_counts(compute, name)`: the admin dashboard's user counts
  (app.users.management.counts_by_status, signups_since), namespace `users`, 30 s.
- `token_accepted(id, epoch)`: key `sign-in-state:{id}`, (active, epoch), L1 and L2.

Every write to a user goes through the ORM, so one `before_flush` listener calls the
invalidators for each new, changed or deleted user: no write path can forget to. They run
after the commit (app.cache.aside). A change the lists do not show or filter on
(`NOT_LISTED`: sign-in bookkeeping such as `last_login_at`, failure counts, the password hash,
the session epoch) leaves the lists alone, so a login does not empty every cached page; the
`last_login_at` a list shows may therefore lag, by up to the list's lifetime, its stale grace
and the L1 lifetime (about two minutes with the defaults). The user's own profile and sign-in
state follow every change that concerns them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.cache import CacheKey, bump, cached, invalidate
from app.core.pagination import Page, paginate
from app.users.models import User
from app.users.repository import UserRepository, user_list_statement

T = TypeVar("T")

PROFILE_TTL = 300
LIST_TTL = 60
COUNTS_TTL = 30
USERS_NAMESPACE = "users"
# Columns no list shows, filters or sorts on, except `last_login_at`, which lists show and sort
# on but which every sign-in writes: lists may show it late (module docstring) rather than every
# sign-in emptying every cached page. A change to any other column (or a new one) bumps the lists.
NOT_LISTED = frozenset(
    {
        "last_login_at",
        "password_hash",
        "session_epoch",
        "failed_login_count",
        "locked_until",
        "lockout_notified_at",
        "avatar_upload_id",
        "updated_at",
    }
)
# What `token_accepted` caches.
SIGN_IN_COLUMNS = frozenset({"is_active_account", "deleted_at", "session_epoch"})

users = UserRepository()


def user_profile(user_id: int, serialize: Callable[[User], Any], load: Callable[[int], User]) -> Any:
    """`serialize(load(user_id))`, cached under `user:{id}`."""
    return cached(CacheKey("user", str(user_id)), lambda: serialize(load(user_id)), timeout=PROFILE_TTL)


def forget_user(user_id: int) -> None:
    """Invalidator of everything cached about one user: their profile and sign-in state."""
    forget_user_profile(user_id)
    forget_sign_in_state(user_id)


def forget_user_profile(user_id: int) -> None:
    invalidate(CacheKey("user", str(user_id)))


def forget_sign_in_state(user_id: int) -> None:
    """Invalidator of `token_accepted(user_id, ...)`."""
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
    row = users.sign_in_state(user_id)
    if row is None:
        return None
    return (bool(row.is_active_account) and row.deleted_at is None, row.session_epoch)


def user_page(filters: dict[str, Any], page: int, per_page: int, render: Callable[[Page[User]], T]) -> T:
    """`render` of one page of the filtered user list, cached per query (L1 and L2).

    `render` should return the finished representation (e.g. the response's bytes), so that a
    hit does no work at all; its qualified name is part of the key."""
    signature = "&".join(f"{name}={filters[name]}" for name in sorted(filters))
    key = CacheKey(USERS_NAMESPACE, f"page:{render.__module__}.{render.__qualname__}:{signature}:{page}:{per_page}")

    def compute() -> T:
        return render(paginate(user_list_statement(**filters), page, per_page))

    return cached(key, compute, timeout=LIST_TTL, local=True)


def forget_user_lists() -> None:
    """Invalidator of `user_page` and the dashboard's user counts."""
    bump(USERS_NAMESPACE)


def dashboard_counts(compute: Callable[[], dict[str, int]], name: str) -> dict[str, int]:
    return cached(CacheKey(USERS_NAMESPACE, f"counts:{name}"), compute, timeout=COUNTS_TTL)


def _changed_attributes(user: User) -> frozenset[str]:
    """The attributes of a loaded user that this flush really changes (`session.dirty` also
    holds objects whose attributes were only set to the values they had)."""
    state = inspect(user)
    return frozenset(name for name in state.committed_state if state.attrs[name].history.has_changes())


@event.listens_for(Session, "before_flush")
def _forget_changed_users(session: Session, flush_context, instances) -> None:
    lists_stale = False
    for user in (*session.new, *session.deleted):
        if isinstance(user, User):
            lists_stale = True
            if user.id is not None:
                forget_user(user.id)
    for user in session.dirty:
        if not isinstance(user, User):
            continue
        changed = _changed_attributes(user)
        if not changed:
            continue
        lists_stale = lists_stale or not changed <= NOT_LISTED
        forget_user_profile(user.id)
        if changed & SIGN_IN_COLUMNS:
            forget_sign_in_state(user.id)
    if lists_stale:
        forget_user_lists()
