"""The password policy (NIST SP 800-63B) and argon2id parameters."""

from __future__ import annotations

import pytest

from app.errors import ValidationFailed
from app.users.passwords import DUMMY_HASH, check_new_password, hash_password, password_problems, verify_password


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
