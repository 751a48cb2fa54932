"""Password hashing (argon2id) and the password policy (NIST SP 800-63B).

The parameters are each app's settings (PASSWORD_HASH_TIME_COST, _MEMORY_KIB, _PARALLELISM),
held with the app's hasher in `app.extensions`; by default RFC 9106's low-memory profile
(m=64 MiB, t=3, p=4, argon2-cffi's defaults), above the OWASP minimum (m=19 MiB, t=2, p=1).
Hashes made with other parameters are upgraded at login. Outside an app (scripts, unit tests)
the default parameters are used.

Argon2 is the one deliberately slow thing on the request path: one verification is 150–300 ms of
CPU on 4 threads and 64 MiB. Left alone, a burst of sign-ins runs them all at once (16 logins:
64 threads, 1 GiB), which slows each of them and starves every other request of CPU. So in an
app, every hash and verification runs on the app's `Argon2Pool`: at most
PASSWORD_HASH_CONCURRENCY at once in this process (by default the machine's cores shared
among the gunicorn workers, at least one), the others queue, and the pool's threads (hence
argon2's lane threads, which inherit it) run at a lower CPU priority (PASSWORD_HASH_NICENESS,
+19 by default), so ordinary requests arriving during a storm of sign-ins are served first. At most
PASSWORD_HASH_QUEUE more wait in line; beyond that a computation is refused at once with
`PasswordHashingBusy` (503 with Retry-After: 1): a waiting sign-in holds one of the web
worker's few request threads, and a storm holding all of them would queue every other
request behind it for seconds. The pool stays busy (the next sign-in is always waiting), so
sign-ins per second stay at argon2's ceiling.
Outside an app (scripts, unit tests) they run in the caller's thread.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context
from werkzeug.exceptions import ServiceUnavailable

from app.config import (
    DEFAULT_PASSWORD_HASH_MEMORY_KIB,
    DEFAULT_PASSWORD_HASH_PARALLELISM,
    DEFAULT_PASSWORD_HASH_TIME_COST,
    Settings,
)
from app.errors import ValidationFailed
from app.i18n import _
from app.logging import get_logger

log = get_logger("hearth.passwords")
T = TypeVar("T")

MIN_LENGTH = 12
MAX_LENGTH = 1024  # generous for passphrases; bounded so hashing cannot be abused
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "auth" / "data" / "common-passwords.txt"

# The default parameters (app.config), for code running outside an app. Never changed.
DEFAULT_HASHER = PasswordHasher(
    time_cost=DEFAULT_PASSWORD_HASH_TIME_COST,
    memory_cost=DEFAULT_PASSWORD_HASH_MEMORY_KIB,
    parallelism=DEFAULT_PASSWORD_HASH_PARALLELISM,
)
# Verified against when the email is unknown, so both cases cost one argon2 verification: the
# hash of a random password nobody kept, made with the default parameters. Precomputed, because
# hashing it at import cost a whole argon2 hash at every process start; an app configured with
# other parameters makes its own once, on first use (`dummy_hash()`), so the cost always matches.
DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$Ovr61uCoqg+6+J4MjQ+NcQ$Aj3iCjx6ByubtzZtb7vkWnDRHfi7g1EZZMbjPEkj1Fo"


POOL_KEY = "hearth.argon2_pool"
HASHER_KEY = "hearth.password_hasher"


def hasher_for(settings: Settings) -> PasswordHasher:
    """An argon2id hasher with the PASSWORD_HASH_* parameters of `settings`."""
    return PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )


class AppHasher:
    """One app's argon2id hasher and the dummy hash made with its parameters."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        self._dummy = None if hasher.check_needs_rehash(DUMMY_HASH) else DUMMY_HASH
        self._lock = threading.Lock()

    def dummy_hash(self) -> str:
        """DUMMY_HASH, or (other parameters) one made on first use and kept for the app's life."""
        if self._dummy is None:
            with self._lock:
                if self._dummy is None:
                    nobody = secrets.token_urlsafe(32)
                    self._dummy = _run(lambda: self.hasher.hash(nobody))
        return self._dummy


def argon2_concurrency(configured: int, workers: int | None, cores: int | None = None) -> int:
    """How many argon2 computations one process runs at once: `configured`, or when it is 0,
    the cores shared among the `workers` processes (gunicorn's default is 2 per core), at least 1."""
    if configured:
        return configured
    cores = cores or os.cpu_count() or 1
    return max(1, cores // (workers or 2 * cores))


class PasswordHashingBusy(ServiceUnavailable):
    """Every argon2 slot of this process is running and the line is full (module docstring)."""

    def __init__(self) -> None:
        # Said on the sign-in form (app.auth.routes) or the 503 page, in the reader's language.
        super().__init__(
            description=_("Too many sign-ins are being checked at this moment. Please try again in a second."),
            retry_after=1,
        )


class Argon2Pool:
    """A bounded set of low-priority threads that run this app's argon2 work, with a bounded
    line (module docstring).

    `niceness` is added to the threads' CPU niceness (Linux): at 19 (the default), CFS weighs
    them 15 against a request thread's 1024, so a request competing with sign-ins for a core gets
    ~98 % of it (at 10, 110 against 1024: ~90 %, and the list's p99 during a storm of sign-ins
    was 3-4x its p99 alone instead of 2.5x: bench/README.md); idle cycles still all go to them."""

    def __init__(self, size: int, niceness: int = 19, queue: int | None = None) -> None:
        self.size = size
        self.niceness = niceness
        self.capacity = None if queue is None else size + queue  # running + waiting
        self._in_flight = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="hearth-argon2", initializer=self._lower_priority
        )

    def is_full(self) -> bool:
        return self.capacity is not None and self._in_flight >= self.capacity

    def run(self, work: Callable[[], T]) -> T:
        """`work()` on a pool thread, waiting in line behind the computations already queued;
        PasswordHashingBusy at once when the line is full."""
        with self._lock:
            if self.capacity is not None and self._in_flight >= self.capacity:
                raise PasswordHashingBusy()
            self._in_flight += 1
        try:
            return self._executor.submit(work).result()
        finally:
            with self._lock:
                self._in_flight -= 1

    def _lower_priority(self) -> None:
        if not self.niceness:
            return
        try:  # Linux: the niceness of this thread alone; the lane threads argon2 starts inherit it
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + self.niceness)
        except (AttributeError, OSError) as error:  # elsewhere: same priority, still bounded
            log.info("argon2_priority_unchanged", error=repr(error)[:200])


def _pool() -> Argon2Pool | None:
    if not has_app_context():
        return None
    extensions = current_app.extensions
    pool = extensions.get(POOL_KEY)
    if pool is None:
        settings = extensions["hearth.settings"]
        size = argon2_concurrency(settings.password_hash_concurrency, settings.web_concurrency)
        # setdefault is atomic: two threads racing here share one pool (the loser made no threads yet).
        pool = extensions.setdefault(
            POOL_KEY, Argon2Pool(size, settings.password_hash_niceness, settings.password_hash_queue)
        )
    return pool


def _app_hasher() -> AppHasher | None:
    if not has_app_context():
        return None
    extensions = current_app.extensions
    found = extensions.get(HASHER_KEY)
    if found is None:
        found = extensions.setdefault(HASHER_KEY, AppHasher(hasher_for(extensions["hearth.settings"])))
    return found


def _hasher() -> PasswordHasher:
    """The current app's hasher (DEFAULT_HASHER outside an app). Looked up in the caller's
    thread: the pool's threads have no app context."""
    found = _app_hasher()
    return DEFAULT_HASHER if found is None else found.hasher


def refuse_when_busy() -> None:
    """Raise PasswordHashingBusy now if the app's line is full, before a sign-in does any other
    work (a refused sign-in then costs a fraction of a millisecond, not its database queries).
    The line may still fill before the verification; `Argon2Pool.run` refuses it then."""
    pool = _pool()
    if pool is not None and pool.is_full():
        raise PasswordHashingBusy()


def _run(work: Callable[[], T]) -> T:
    pool = _pool()
    return work() if pool is None else pool.run(work)


def hash_password(password: str) -> str:
    hasher = _hasher()
    return _run(lambda: hasher.hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    hasher = _hasher()
    return _run(lambda: _verify(hasher, password_hash, password))


def _verify(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Made with other parameters than the current app's: hash the password again at sign-in."""
    return _hasher().check_needs_rehash(password_hash)


def dummy_hash() -> str:
    """What to verify against when the email is unknown: a hash with the app's parameters."""
    found = _app_hasher()
    return DUMMY_HASH if found is None else found.dummy_hash()


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text().splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def password_problems(password: str, email: str | None = None) -> list[str]:
    """Why `password` is unacceptable (empty when it is fine). No composition rules."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(_("Use at least %(num)d characters.", num=MIN_LENGTH))
    if len(password) > MAX_LENGTH:
        problems.append(_("Use at most %(num)d characters.", num=MAX_LENGTH))
    if password.lower() in common_passwords():
        problems.append(_("This password is too common; choose another."))
    if email and password.strip().lower() == email.strip().lower():
        problems.append(_("The password must not be your email address."))
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
