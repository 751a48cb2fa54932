"""`flask seed-admin`: an administrator exists after `make run`, credentials shown once."""

from __future__ import annotations

import os
import re
import socket

import pytest

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


# The first run's credentials: a 0600 file, then a box once `make run` has everything up ------


def test_seed_admin_writes_a_generated_password_to_a_file_only_its_owner_can_read(app, monkeypatch, tmp_path):
    import stat

    from app.cli import read_admin_credentials

    monkeypatch.delenv("ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    previous = os.umask(0o022)  # a permissive umask must not matter
    path = tmp_path / "instance" / "admin-credentials.txt"
    try:
        result = app.test_cli_runner().invoke(args=["seed-admin", "--credentials-file", str(path)])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credentials = read_admin_credentials(path)
    assert credentials.password not in result.output  # the file, not the terminal, holds it
    assert f"saved to {path}" in result.output
    [admin] = _admins(app)
    assert credentials.email == admin.email and verify_password(admin.password_hash, credentials.password)
    text = path.read_text()
    assert text.startswith("# Hearth's first administrator") and f"email: {admin.email}\n" in text
    # a second run leaves the file as long as its password still works
    assert "already exists" in app.test_cli_runner().invoke(args=["seed-admin", "--credentials-file", str(path)]).output
    assert read_admin_credentials(path) == credentials


def test_the_credentials_file_goes_once_its_password_no_longer_works(app, monkeypatch, tmp_path):
    from app.cli import read_admin_credentials

    monkeypatch.delenv("ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    path = tmp_path / "admin-credentials.txt"
    runner = app.test_cli_runner()
    runner.invoke(args=["seed-admin", "--credentials-file", str(path)])
    email = read_admin_credentials(path).email
    changed = runner.invoke(args=["users", "set-password", email], input="a brand new admin passphrase\n" * 2)
    assert changed.exit_code == 0, changed.output
    result = runner.invoke(args=["seed-admin", "--credentials-file", str(path)])
    assert result.exit_code == 0 and "Removed" in result.output
    assert not path.exists()


def test_a_given_admin_password_is_never_written_anywhere(app, monkeypatch, tmp_path):
    monkeypatch.setenv("ADMIN_EMAIL", "boss@example.com")
    monkeypatch.setenv("ADMIN_PASSWORD", "a long enough admin password")
    path = tmp_path / "admin-credentials.txt"
    assert app.test_cli_runner().invoke(args=["seed-admin", "--credentials-file", str(path)]).exit_code == 0
    assert not path.exists()


def test_the_box_shows_where_hearth_runs_and_the_first_run_sign_in():
    from app.cli import AdminCredentials, credentials_box

    box = credentials_box(
        "http://127.0.0.1:5000", AdminCredentials("admin@hearth.example.com", "s3cret-Pass"), "instance/x.txt"
    )
    lines = box.splitlines()
    assert lines[0].startswith("╭") and lines[-1].startswith("╰")
    assert len({len(line) for line in lines}) == 1  # a closed box: every line as wide
    assert "Hearth is running at http://127.0.0.1:5000" in box and "s3cret-Pass" in box
    assert "instance/x.txt" in box and "/dev/mail/" in box and "Ctrl-C" in box
    without = credentials_box("http://127.0.0.1:5000", None, "instance/x.txt", dev_mail=False)
    assert "Admin password" not in without and "set-password" in without and "/dev/mail/" not in without


def test_make_runs_script_prints_the_box_after_start_up_and_exits_0_on_ctrl_c(tmp_path):
    """scripts/run.py as `make run` starts it (not in a terminal here: SIGINT goes to the
    script, which passes it on): the web and every worker start, the box comes after their
    start-up lines, and an interrupt stops every process and exits 0."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from app.cli import AdminCredentials, write_admin_credentials
    from tests.support import free_port

    root = Path(__file__).resolve().parents[2]
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PORT"},
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "STORAGE_LOCAL_PATH": str(tmp_path / "storage"),
        "JOBS_SQLITE_DIR": str(tmp_path / "huey"),
        "SECRET_KEY": "k" * 48,
        "JWT_SECRET": "j" * 48,
        "LOG_LEVEL": "INFO",
    }
    flask = str(Path(sys.executable).with_name("flask"))
    subprocess.run([flask, "--app", "wsgi", "db", "upgrade"], cwd=root, env=env, check=True, capture_output=True)
    credentials = tmp_path / "admin-credentials.txt"
    write_admin_credentials(credentials, AdminCredentials("admin@hearth.example.com", "first-run-Secret-42"))
    script = subprocess.Popen(
        [sys.executable, "scripts/run.py", "--port", str(port), "--credentials", str(credentials)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = script.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("╰"):
                break
        output = "".join(lines)
        assert "first-run-Secret-42" in output and f"Hearth is running at http://127.0.0.1:{port}" in output, output
        box_at = output.index("╭")
        assert output.count("worker_starting") == 4 and output.rindex("worker_starting") < box_at
        script.send_signal(signal.SIGINT)
        try:
            rest, _ = script.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            script.kill()  # what honcho printed says which process never stopped
            pytest.fail(f"still running 30 s after Ctrl-C:\n{script.communicate()[0]}")
    finally:
        if script.poll() is None:
            script.kill()
    assert script.returncode == 0, rest
    assert "Hearth stopped." in rest
    with socket.socket() as probe:  # the web server is gone with the rest
        assert probe.connect_ex(("127.0.0.1", port)) != 0
