"""Typed configuration that fails fast, naming every offending variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.config import ConfigError, Settings, _dev_secrets, load_settings
from tests.support import PROJECT_ROOT

STRONG = "s" * 40
PRODUCTION_OK = {
    "app_env": "production",
    "database_url": "postgresql://u@db/hearth",
    "secret_key": STRONG,
    "jwt_secret": STRONG,
    "smtp_url": "smtp://mail:25",
    "redis_url": "redis://cache:6379/0",
    "public_url": "https://hearth.example.com",
}


def _problems(**values) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(values)
    return dict(caught.value.problems)


def test_production_requires_secrets_database_and_smtp_all_reported_at_once():
    problems = _problems(app_env="production")
    assert set(problems) == {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_SECRET", "SMTP_URL", "PUBLIC_URL"}
    assert "required outside development/test" in problems["SECRET_KEY"]


def test_short_secrets_are_rejected():
    problems = _problems(**{**PRODUCTION_OK, "secret_key": "short", "jwt_secret": "x" * 31})
    assert problems == {"SECRET_KEY": "must be at least 32 characters", "JWT_SECRET": "must be at least 32 characters"}


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("app_env", "prod", "APP_ENV"),
        ("port", "eighty", "PORT"),
        ("port", 70000, "PORT"),
        ("log_level", "LOUD", "LOG_LEVEL"),
        ("cors_origins", "app.example.com", "CORS_ORIGINS"),
        ("database_url", "mysql://db/hearth", "DATABASE_URL"),
        ("database_url", "sqlite:///hearth.db", "DATABASE_URL"),
        ("redis_url", "http://cache:6379", "REDIS_URL"),
        ("rate_limit_default", "lots per minute", "RATE_LIMIT_DEFAULT"),
        ("storage_backend", "ftp", "STORAGE_BACKEND"),
        ("smtp_url", "http://mail", "SMTP_URL"),
        ("metrics_token", "short", "METRICS_TOKEN"),
        ("export_retention_hours", 0, "EXPORT_RETENTION_HOURS"),
        ("export_max_concurrent_per_user", "two", "EXPORT_MAX_CONCURRENT_PER_USER"),
    ],
)
def test_each_bad_value_is_named(field, value, variable):
    assert variable in _problems(**{**PRODUCTION_OK, field: value})


def test_s3_storage_needs_a_bucket():
    assert "S3_BUCKET" in _problems(**{**PRODUCTION_OK, "storage_backend": "s3"})
    settings = load_settings({**PRODUCTION_OK, "storage_backend": "s3", "s3_bucket": "hearth-prod"})
    assert settings.s3_bucket == "hearth-prod"


def test_a_valid_production_configuration_loads_and_normalises():
    settings = load_settings({**PRODUCTION_OK, "cors_origins": "https://a.example.com, https://b.example.com"})
    assert settings.database_url == "postgresql+psycopg://u@db/hearth"
    assert settings.cors_origins == ["https://a.example.com", "https://b.example.com"]
    assert settings.is_production_like


def test_test_environment_generates_throwaway_secrets():
    settings = load_settings({"app_env": "test"})
    assert len(settings.secret_key) >= 32 and len(settings.jwt_secret) >= 32
    assert settings.sqlalchemy_url.startswith("sqlite:///")


def test_development_secrets_are_generated_once_and_kept(tmp_path):
    path = tmp_path / "instance" / "secrets.json"
    first = _dev_secrets(path)
    assert _dev_secrets(path) == first
    assert len(first["secret_key"]) >= 32
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("APP_ENV", "staging")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.setenv("JWT_SECRET", STRONG)
    monkeypatch.setenv("SMTP_URL", "smtps://u:p@mail:465")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("PUBLIC_URL", "https://hearth.example.com")
    monkeypatch.setenv("TRUSTED_HOSTS", "hearth.example.com, .internal.example")
    settings = Settings()
    assert settings.allowed_hosts == ["hearth.example.com", ".internal.example"]
    assert settings.app_env == "staging" and settings.port == 8080


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "from app import create_app; create_app()"],
        [str(PROJECT_ROOT / ".venv/bin/flask"), "--app", "wsgi", "routes"],
    ],
)
def test_startup_stops_with_one_message_and_no_traceback(command, tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "SECRET_KEY", "JWT_SECRET", "SMTP_URL", "REDIS_URL"}
    }
    env.update(APP_ENV="production", SECRET_KEY="too-short", PORT="not-a-port")
    result = subprocess.run(
        command,
        cwd=tmp_path if command[0] == sys.executable else PROJECT_ROOT,
        env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for variable in ("SECRET_KEY", "JWT_SECRET", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "PORT"):
        assert variable in result.stderr
    assert "must be at least 32 characters" in result.stderr


def test_gunicorn_refuses_to_start_with_a_bad_configuration():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_SECRET", "SMTP_URL"}
    }
    env.update(APP_ENV="production", GUNICORN_BIND="127.0.0.1:0")
    result = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "Traceback" not in result.stderr


def test_password_hashing_defaults_to_rfc_9106_low_memory_the_cost_dummy_hash_was_made_with():
    from argon2.profiles import RFC_9106_LOW_MEMORY

    from app.users.passwords import DUMMY_HASH

    s = load_settings({"_env_file": None, "app_env": "test"})
    configured = (s.password_hash_time_cost, s.password_hash_memory_kib, s.password_hash_parallelism)
    profile = RFC_9106_LOW_MEMORY
    assert configured == (profile.time_cost, profile.memory_cost, profile.parallelism) == (3, 65536, 4)
    assert DUMMY_HASH.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_argon2_needs_eight_kib_per_lane():
    problems = _problems(app_env="test", password_hash_parallelism=4, password_hash_memory_kib=16)
    assert problems == {"PASSWORD_HASH_MEMORY_KIB": "argon2 needs at least 8 KiB per lane: 32 for 4 lanes"}
    cheapest = {"app_env": "test", "password_hash_parallelism": 1, "password_hash_memory_kib": 8}
    assert load_settings(cheapest).password_hash_memory_kib == 8


@pytest.mark.parametrize(
    ("time_cost", "memory_kib", "allowed"),
    [(1, 47104, True), (1, 47103, False), (2, 19456, True), (2, 19455, False), (3, 12288, True), (5, 7168, True)],
)
def test_outside_development_and_test_hashing_is_at_least_owasps_minimum(time_cost, memory_kib, allowed):
    values = {
        **PRODUCTION_OK,
        "password_hash_time_cost": time_cost,
        "password_hash_parallelism": 1,
        "password_hash_memory_kib": memory_kib,
    }
    if allowed:
        assert load_settings(values).password_hash_memory_kib == memory_kib
    else:
        assert "below OWASP's minimum" in _problems(**values)["PASSWORD_HASH_MEMORY_KIB"]
    test_values = {**values, "app_env": "test"}  # the test suite's own cheap cost is allowed there
    assert load_settings({**test_values, "password_hash_memory_kib": 8}).password_hash_memory_kib == 8
