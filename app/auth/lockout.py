"""Password guessing protection that cannot be turned against the account's owner.

Wrong passwords are counted per (account, client) first: five from one client lock that
client out of that account, with a back-off that doubles up to an hour, and nobody else
notices. Only many failures across clients (`LOGIN_ACCOUNT_LOCKOUT_THRESHOLD`, a
distributed attack) lock the account itself. The owner is told by email on a lockout (at
most once an hour) and gets an unlock link; a successful password reset unlocks too.
Wrong "current password" answers on signed-in pages count the same way, so a stolen
session cannot guess the password either. State lives in the database, so it holds when
Redis is down.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from flask import current_app

from app.audit.service import record
from app.auth.emailed_tokens import UNLOCK_ACCOUNT, issue_token
from app.auth.models import LoginFailures
from app.auth.repository import LoginFailuresRepository
from app.core.database import utcnow
from app.core.hosts import public_url_for
from app.core.net import client_address
from app.core.unit_of_work import unit_of_work
from app.i18n import locale_of
from app.mail.service import queue_email
from app.users.models import User

LOCKOUT_BASE_SECONDS = 30
LOCKOUT_MAX_SECONDS = 3600
NOTIFY_AT_MOST_EVERY = timedelta(hours=1)

login_failures = LoginFailuresRepository()


def lockout_seconds(failures: int, threshold: int) -> int:
    """0 below the threshold, then 30 s doubling with each further failure, capped at 1 h."""
    if failures < threshold:
        return 0
    return min(LOCKOUT_BASE_SECONDS * 2 ** min(failures - threshold, 16), LOCKOUT_MAX_SECONDS)


def client_key(address: str | None = None) -> str:
    """The client as lockouts see it: its IP, or its /64 for IPv6 (one host owns a /64)."""
    address = address or client_address()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def locked_until(user: User, client: str | None = None, now: datetime | None = None) -> datetime | None:
    """When this client may try this account's password again (None: it may now)."""
    now = now or utcnow()
    pair = login_failures.of(user.id, client or client_key())
    ends = [t for t in (user.locked_until, pair.locked_until if pair else None) if t is not None and t > now]
    return max(ends) if ends else None


def register_failure(user: User, channel: str, client: str | None = None) -> None:
    """Count one wrong password from this client, locking the pair (and, under a distributed
    attack, the account) when a threshold is reached, in the caller's unit of work (callers
    that then refuse the password give it one of its own, committed before they raise)."""
    settings = current_app.extensions["hearth.settings"]
    client = client or client_key()
    now = utcnow()
    with unit_of_work():
        pair = login_failures.of(user.id, client)
        if pair is None:
            pair = login_failures.add(LoginFailures(user_id=user.id, client=client, failures=0))
        pair.failures += 1
        pair.last_failed_at = now
        user.failed_login_count += 1
        record("login_failed", subject_id=user.id, channel=channel, reason="bad_password")
        newly_locked = False
        pair_seconds = lockout_seconds(pair.failures, settings.login_lockout_threshold)
        if pair_seconds:
            pair.locked_until = now + timedelta(seconds=pair_seconds)
            record("client_locked_out", subject_id=user.id, seconds=pair_seconds, failures=pair.failures)
            newly_locked = True
        account_seconds = lockout_seconds(user.failed_login_count, settings.login_account_lockout_threshold)
        if account_seconds:
            user.locked_until = now + timedelta(seconds=account_seconds)
            record("account_locked", subject_id=user.id, seconds=account_seconds, failures=user.failed_login_count)
            newly_locked = True
        if newly_locked:
            _notify_owner(user, now)


def _notify_owner(user: User, now: datetime) -> None:
    """Email the owner with an unlock link, at most once an hour (the emails must not become
    a flood an attacker controls)."""
    if user.lockout_notified_at is not None and now - user.lockout_notified_at < NOTIFY_AT_MOST_EVERY:
        return
    user.lockout_notified_at = now
    raw = issue_token(user.id, UNLOCK_ACCOUNT)
    queue_email(
        user.email,
        "account_locked",
        {
            "name": user.display_name,
            "unlock": public_url_for("auth.unlock_account", token=raw),
            "reset": public_url_for("auth.reset_request"),
            # Their preference, else the language of the sign-in page that was refused.
            "locale": locale_of(user),
        },
        user_id=user.id,
    )


def clear_client(user: User, client: str | None = None) -> None:
    """A correct password from this client: forget its failures and the account-wide count."""
    with unit_of_work():
        login_failures.forget_client(user.id, client or client_key())
        user.failed_login_count = 0


def unlock_account(user: User) -> None:
    """The owner proved control of the mailbox (unlock link, password reset): every lock of
    the account ends, in the caller's unit of work (the caller records it)."""
    with unit_of_work():
        login_failures.forget_account(user.id)
        user.failed_login_count = 0
        user.locked_until = None


def prune_failures(older_than: timedelta = timedelta(days=1)) -> int:
    """Forget failure counts nobody added to for a day (run by the maintenance task)."""
    with unit_of_work():
        return login_failures.forget_older_than(utcnow() - older_than)
