"""`flask seed-admin`: an administrator exists after `make run`, credentials shown once."""

from __future__ import annotations

import re

from app.users.models import User
from app.users.passwords import verify_password
from app.users.repository import UserRepository


def _admins(app) -> list[User]:
    with app.app_context():
        return UserRepository().admins()


def test_seed_admin_generates_a_password_once_and_prints_it_once(app, monkeypatch):
    monkeypatch.delenv("ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-admin"])
    assert first.exit_code == 0, first.output
    password = re.search(r"Generated password \(shown only now\): (\S+)", first.output).group(1)
    [admin] = _admins(app)
    assert verify_password(admin.password_hash, password)
    second = runner.invoke(args=["seed-admin"])
    assert second.exit_code == 0
    assert "Generated password" not in second.output and "already exists" in second.output
    assert len(_admins(app)) == 1


def test_seed_admin_uses_the_given_email_and_password(app, monkeypatch):
    monkeypatch.setenv("ADMIN_EMAIL", "Boss@Example.COM")
    monkeypatch.setenv("ADMIN_PASSWORD", "a long enough admin password")
    result = app.test_cli_runner().invoke(args=["seed-admin"])
    assert result.exit_code == 0 and "a long enough admin password" not in result.output
    [admin] = _admins(app)
    assert admin.email == "boss@example.com"
    assert verify_password(admin.password_hash, "a long enough admin password")
    assert admin.password_hash.startswith("$argon2id$")


def test_seed_admin_refuses_a_weak_password(app, monkeypatch):
    monkeypatch.setenv("ADMIN_EMAIL", "boss@example.com")
    monkeypatch.setenv("ADMIN_PASSWORD", "short")
    result = app.test_cli_runner().invoke(args=["seed-admin"])
    assert result.exit_code != 0
    assert _admins(app) == []


def test_mail_test_command_queues_an_email_job(app):
    result = app.test_cli_runner().invoke(args=["mail", "test", "ops@example.com"])
    assert result.exit_code == 0 and "queued job" in result.output


def test_the_seeded_admin_gets_an_api_token_with_every_permission(app, client, monkeypatch, api_auth):
    from app.rbac.catalog import PERMISSIONS

    monkeypatch.delenv("ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    output = app.test_cli_runner().invoke(args=["seed-admin"]).output
    email = re.search(r"Admin account created: (\S+)", output).group(1)
    password = re.search(r"Generated password \(shown only now\): (\S+)", output).group(1)
    me = client.get("/api/v1/me", headers=api_auth.headers(email, password)).json
    assert me["roles"] == ["admin"] and set(me["permissions"]) == set(PERMISSIONS) and me["email_verified"]
