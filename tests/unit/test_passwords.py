"""The password policy (NIST SP 800-63B) and argon2id parameters."""

from __future__ import annotations

import os
import time

import pytest
from flask import Flask

from app.config import load_settings
from app.errors import ValidationFailed
from app.users.passwords import (
    DUMMY_HASH,
    check_new_password,
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)
from tests.support import CHEAP_HASHING


def test_twelve_characters_minimum_and_no_composition_rules():
    assert password_problems("short pass") == ["Use at least 12 characters."]
    assert password_problems("all lower case words") == []


def test_long_passphrases_are_accepted():
    assert password_problems("a" * 64 + " plus a sentence") == []


def test_common_passwords_from_the_shipped_list_are_refused_case_insensitively():
    from app.users.passwords import common_passwords

    words = common_passwords()
    assert len(words) == 3000 and "password" in words and "123456" in words
    long_common = sorted(word for word in words if len(word) >= 12)[0]
    assert "This password is too common; choose another." in password_problems(long_common.upper())


def test_the_email_is_not_a_password():
    assert "The password must not be your email address." in password_problems(
        "Someone@Example.com", "someone@example.com"
    )


def test_policy_errors_list_each_problem_as_a_field_error():
    with pytest.raises(ValidationFailed) as caught:
        check_new_password("short")
    assert caught.value.extra["errors"][0]["field"] == "password"


def test_hashes_are_argon2id_at_least_owasp_parameters():
    encoded = hash_password("correct horse battery staple")
    assert encoded.startswith("$argon2id$")
    memory, time_cost, parallelism = (int(part.split("=")[1]) for part in encoded.split("$")[3].split(","))
    assert memory >= 19456 and time_cost >= 2 and parallelism >= 1
    assert verify_password(encoded, "correct horse battery staple")
    assert not verify_password(encoded, "wrong")
    assert not verify_password(DUMMY_HASH, "anything")


def test_argon2_concurrency_shares_the_cores_among_the_workers():
    from app.users.passwords import argon2_concurrency

    assert argon2_concurrency(0, workers=2, cores=2) == 1
    assert argon2_concurrency(0, workers=2, cores=8) == 4
    assert argon2_concurrency(0, workers=None, cores=8) == 1  # gunicorn's default: 2 workers per core
    assert argon2_concurrency(0, workers=16, cores=2) == 1  # never none
    assert argon2_concurrency(3, workers=2, cores=2) == 3  # configured


def test_the_argon2_pool_runs_at_most_its_size_at_once_and_queues_the_rest():
    import threading
    import time

    from app.users.passwords import Argon2Pool

    pool = Argon2Pool(2, niceness=0)
    running, most = [0], [0]
    lock = threading.Lock()

    def work() -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return threading.current_thread().name

    results: list[str] = []
    callers = [threading.Thread(target=lambda: results.append(pool.run(work))) for _ in range(6)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(5)
    assert len(results) == 6 and most[0] == 2
    assert all(name.startswith("hearth-argon2") for name in results)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread niceness is a Linux feature")
def test_argon2_runs_at_a_lower_cpu_priority_than_requests():
    import threading

    from app.users.passwords import Argon2Pool

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    niceness = Argon2Pool(1, niceness=10).run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert niceness == min(19, mine + 10)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller is untouched


def _app(**settings) -> Flask:
    """A bare Flask app carrying Hearth settings: all app.users.passwords looks at."""
    flask_app = Flask(__name__)
    flask_app.extensions["hearth.settings"] = load_settings({"_env_file": None, "app_env": "test", **settings})
    return flask_app


def test_in_an_app_passwords_are_hashed_and_verified_on_the_apps_pool(monkeypatch):
    import threading

    from argon2 import PasswordHasher

    import app.users.passwords as passwords

    threads: list[str] = []

    class Recording(PasswordHasher):
        def hash(self, password, *, salt=None) -> str:
            threads.append(threading.current_thread().name)
            return super().hash(password, salt=salt)

        def verify(self, digest, password) -> bool:
            threads.append(threading.current_thread().name)
            return super().verify(digest, password)

    flask_app = _app(password_hash_concurrency=1, password_hash_niceness=0, **CHEAP_HASHING)
    flask_app.extensions[passwords.HASHER_KEY] = passwords.AppHasher(Recording(1, 8, 1))
    monkeypatch.setattr(passwords, "DEFAULT_HASHER", Recording())
    with flask_app.app_context():
        assert verify_password(hash_password("a long enough passphrase"), "a long enough passphrase")
        assert not verify_password(DUMMY_HASH, "a long enough passphrase")
    assert verify_password(hash_password("outside any app"), "outside any app")
    assert [name.startswith("hearth-argon2") for name in threads] == [True, True, True, False, False]


def test_each_app_hashes_with_its_own_parameters_and_upgrades_the_others():
    cheap, production = _app(**CHEAP_HASHING), _app()
    with cheap.app_context():
        cheap_hash = hash_password("correct horse battery staple")
        assert not needs_rehash(cheap_hash)
    with production.app_context():
        assert verify_password(cheap_hash, "correct horse battery staple")  # the parameters travel with the hash
        assert needs_rehash(cheap_hash)  # upgraded at the next sign-in
        production_hash = hash_password("correct horse battery staple")
        assert not needs_rehash(production_hash)
    assert cheap_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert production_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    with cheap.app_context():
        assert needs_rehash(production_hash)
    assert not needs_rehash(production_hash)  # outside an app: the default parameters


def test_unknown_emails_are_verified_against_a_hash_with_the_apps_parameters():
    from app.users.passwords import DEFAULT_HASHER, dummy_hash

    # Precomputed for the default parameters (not hashed at import): regenerate it if they change.
    assert not DEFAULT_HASHER.check_needs_rehash(DUMMY_HASH)
    assert dummy_hash() == DUMMY_HASH
    with _app().app_context():
        assert dummy_hash() == DUMMY_HASH
    cheap, other = _app(**CHEAP_HASHING), _app(**CHEAP_HASHING)
    with cheap.app_context():
        made = dummy_hash()
        assert made != DUMMY_HASH and not needs_rehash(made)  # costs what a real account's check costs
        assert dummy_hash() is made  # made once per app
    with other.app_context():
        assert dummy_hash() != made  # and per app


def test_a_full_line_refuses_at_once_and_the_next_computation_is_taken_again():
    import threading

    from app.users.passwords import Argon2Pool, PasswordHashingBusy

    pool = Argon2Pool(1, niceness=0, queue=1)  # one running, one waiting
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow() -> str:
        started.release()
        release.wait(5)
        return "done"

    results: list[str] = []
    running = threading.Thread(target=lambda: results.append(pool.run(slow)))
    running.start()
    assert started.acquire(timeout=5)  # the first runs
    waiting = threading.Thread(target=lambda: results.append(pool.run(lambda: "queued")))
    waiting.start()
    deadline = time.monotonic() + 5
    while pool._in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(PasswordHashingBusy) as refused:  # the third: refused, not queued
        pool.run(lambda: "never")
    assert refused.value.code == 503 and refused.value.retry_after == 1
    release.set()
    running.join(5)
    waiting.join(5)
    assert sorted(results) == ["done", "queued"]
    assert pool.run(lambda: "again") == "again"  # the line is free again
    assert pool._in_flight == 0
