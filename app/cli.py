"""`flask` commands: seed-admin, worker, jobs sweep, mail test, roles, users, demo seed, stats; and the
first-run credentials file `make run` writes and shows (scripts/run.py)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from huey.consumer import Consumer

from app.auth.accounts import set_password
from app.core.runtime import settle_after_startup
from app.demo import DEFAULT_USERS, DEMO_DOMAIN, MAX_USERS
from app.errors import DomainError
from app.jobs.queues import QUEUES, QUEUES_KEY
from app.jobs.service import sweep
from app.logging import get_logger
from app.mail.service import queue_test_email
from app.rbac.service import sync_roles
from app.stats import service as stats_service
from app.users.management import reset_two_factor
from app.users.passwords import verify_password
from app.users.repository import UserRepository, normalise_email
from app.users.service import ensure_admin

log = get_logger("hearth.cli")
jobs_cli = AppGroup("jobs", help="Background jobs.")
mail_cli = AppGroup("mail", help="Outgoing email.")


# The first run's credentials --------------------------------------------------------------


@dataclass(frozen=True)
class AdminCredentials:
    email: str
    password: str


def write_admin_credentials(path: Path, credentials: AdminCredentials) -> None:
    """Write the generated admin sign-in to `path`, readable by its owner only (0600 from
    the moment it exists: never briefly open to others, whatever the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that already existed keeps its mode through O_CREAT
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(
            f"# Hearth's first administrator, created by `flask seed-admin` on {stamp}.\n"
            "# Only you can read this file. Sign in, change the password on /account/, then delete\n"
            "# this file: it is not updated when the password changes.\n"
            f"email: {credentials.email}\n"
            f"password: {credentials.password}\n"
        )


def read_admin_credentials(path: Path) -> AdminCredentials | None:
    """What `write_admin_credentials` wrote to `path`, or None (no file, or not that format)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    fields = dict(line.split(": ", 1) for line in lines if ": " in line and not line.startswith("#"))
    if not fields.get("email") or not fields.get("password"):
        return None
    return AdminCredentials(fields["email"], fields["password"])


def credentials_box(url: str, credentials: AdminCredentials | None, path: Path | str, dev_mail: bool = True) -> str:
    """What `make run` prints once everything is up: where Hearth is, and the admin's sign-in
    while the first run's credentials file exists."""
    lines = [f"Hearth is running at {url}", ""]
    if credentials:
        lines += [
            f"Admin email     {credentials.email}",
            f"Admin password  {credentials.password}",
            "",
            f"Also in {path} (only you can read it).",
            f"Sign in at {url}/auth/login, change the password",
            "on /account/, then delete that file.",
        ]
    else:
        lines += [
            "Sign in with the administrator made on the first run",
            "(lost its password? flask --app wsgi users set-password EMAIL).",
        ]
    lines.append("")
    if dev_mail:
        lines.append(f"Emails sent in development: {url}/dev/mail/")
    lines.append("Ctrl-C stops the web server and every worker.")
    width = max(len(line) for line in lines)
    rule = "─" * (width + 4)
    return "\n".join([f"╭{rule}╮", *(f"│  {line.ljust(width)}  │" for line in lines), f"╰{rule}╯"])


@click.command("seed-admin")
@click.option(
    "--credentials-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a generated password to this file (mode 0600) instead of the terminal "
    "(`make run` shows it once everything is up); a file whose password no longer signs the admin in is removed.",
)
@with_appcontext
def seed_admin(credentials_file: Path | None) -> None:
    """Make sure an administrator exists (ADMIN_EMAIL / ADMIN_PASSWORD, or generated once)."""
    try:
        account = ensure_admin(os.environ.get("ADMIN_EMAIL") or None, os.environ.get("ADMIN_PASSWORD") or None)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    if not account.created:
        click.echo(f"Admin account: {account.user.email} (already exists)")
        if credentials_file is not None:
            _forget_stale_credentials(credentials_file, account.user)
        return
    click.echo(f"Admin account created: {account.user.email}")
    if not account.generated_password:
        return
    if credentials_file is not None:
        write_admin_credentials(credentials_file, AdminCredentials(account.user.email, account.generated_password))
        click.echo(f"Generated password saved to {credentials_file} (mode 0600: only you can read it).")
        return
    # Shown once, on the terminal only: it is never logged and cannot be shown again.
    click.echo(f"Generated password (shown only now): {account.generated_password}")


def _forget_stale_credentials(path: Path, admin) -> None:
    """Remove the first run's credentials file once its password no longer signs that admin in."""
    credentials = read_admin_credentials(path)
    if credentials is None or credentials.email != admin.email:
        return
    if not verify_password(admin.password_hash, credentials.password):
        path.unlink(missing_ok=True)
        click.echo(f"Removed {path}: its password is no longer {admin.email}'s.")


@click.command("worker")
@with_appcontext
@click.argument("queue", type=click.Choice(["emails", "uploads", "sync", "reports"]))
@click.option("--workers", type=int, default=None, help="Threads; defaults to the queue's concurrency.")
def worker(queue: str, workers: int | None) -> None:
    """Run a huey consumer for QUEUE (one process per queue; run more to scale out)."""
    huey = current_app.extensions[QUEUES_KEY].hueys[queue]
    if huey.immediate:
        raise click.ClickException("JOBS_IMMEDIATE is set: tasks run inline, there is no queue to consume")
    settings = current_app.extensions["hearth.settings"]
    consumer = huey.create_consumer(
        workers=workers or QUEUES[queue].workers,
        worker_type="thread",
        periodic=queue == "sync",  # the sweeper runs on the sync queue's consumers
        initial_delay=0.05,
        backoff=1.5,
        max_delay=1.0,
        check_worker_health=True,
        scheduler_interval=1,
        # systemd, Kubernetes, honcho and the cluster harness stop with SIGTERM: finish the
        # running jobs (up to the timeout) instead of dropping them for the sweeper.
        graceful_signal="TERM",
        shutdown_timeout=settings.jobs_shutdown_timeout_seconds,
    )
    graceful_on_interrupt(consumer)
    settle_after_startup()
    log.info(
        "worker_starting",
        queue=queue,
        workers=consumer.workers,
        shutdown_timeout_seconds=settings.jobs_shutdown_timeout_seconds,
    )
    consumer.run()
    log.info("worker_stopped", queue=queue)


def graceful_on_interrupt(consumer: Consumer) -> None:
    """Make SIGINT (Ctrl-C) graceful too, as it was before SIGTERM became huey's graceful
    signal (huey would otherwise make SIGINT the immediate stop). The same signal a second time
    during the wait stops at once, as with huey's own graceful signal."""
    # huey keeps signal -> (restart, graceful) here; no public option sets both signals graceful.
    consumer._signal_actions[signal.SIGINT] = (False, True)


@jobs_cli.command("sweep")
def sweep_jobs() -> None:
    """Re-send jobs huey lost now (the sync consumer also does this every minute)."""
    report = sweep()
    click.echo(f"requeued={len(report.requeued)} failed={len(report.failed)}")


@mail_cli.command("test")
@click.argument("address")
def send_test_mail(address: str) -> None:
    """Queue a test message to ADDRESS through the emails queue."""
    job = queue_test_email(address)
    click.echo(f"queued job {job.id}")


roles_cli = AppGroup("roles", help="Roles and permissions.")
users_cli = AppGroup("users", help="User accounts.")


@roles_cli.command("sync")
@click.option("--restore", is_flag=True, help="Also give built-in roles back every permission the catalog grants.")
def roles_sync(restore: bool) -> None:
    """Write the built-in roles and permissions (idempotent; keeps admins' edits unless --restore)."""
    sync_roles(restore_grants=restore)
    click.echo("roles and permissions are in sync" + (" (built-in grants restored)" if restore else ""))


@users_cli.command("create-admin")
@click.argument("email")
@click.password_option(prompt="Password for the new administrator")
def users_create_admin(email: str, password: str) -> None:
    """Create an administrator EMAIL (or grant the admin role to that existing user)."""
    try:
        account = ensure_admin(email, password)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"{account.user.email} is an administrator" + (" (created)" if account.created else ""))


@users_cli.command("set-password")
@click.argument("email")
@click.password_option(prompt="New password")
def users_set_password(email: str, password: str) -> None:
    """Set EMAIL's password; every session and token of that user is revoked."""
    try:
        user = set_password(email, password)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"password changed for {user.email}; their sessions and tokens are revoked")


@users_cli.command("reset-2fa")
@click.argument("email")
def users_reset_two_factor(email: str) -> None:
    """Remove every second factor of EMAIL (app, passkeys, recovery codes) and sign them out."""
    user = UserRepository().find_by_email(normalise_email(email))
    if user is None:
        raise click.ClickException(f"no account {email}")
    try:
        reset_two_factor(None, None, user)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"two-factor authentication of {user.email} is reset; they are signed out everywhere")


demo_cli = AppGroup("demo", help="Demo data for trying Hearth out (development and test only).")


@demo_cli.command("seed")
@click.option(
    "--users",
    "user_count",
    type=click.IntRange(1, MAX_USERS),
    default=DEFAULT_USERS,
    show_default=True,
    help="How many demo accounts there should be; existing ones count, none is removed.",
)
def demo_seed(user_count: int) -> None:
    """Fill the database with demo accounts, uploads, jobs and audit events (idempotent).

    Refused with APP_ENV=production or staging.
    """
    from app.demo.seed import seed_demo  # demo data and its generators load only for `flask demo seed`

    started = time.perf_counter()
    try:
        summary = seed_demo(user_count)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    elapsed = time.perf_counter() - started
    members = ", ".join(f"{role} {count}" for role, count in summary.members.items())
    if not summary.created_anything:
        click.echo(f"Demo data already there: {summary.demo_users} demo accounts ({members}); nothing added.")
        return

    def counts(by_status: dict[str, int]) -> str:
        return f"{sum(by_status.values())} (" + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) + ")"

    click.echo(
        f"Demo data added in {elapsed:.1f} s: {summary.users_created} accounts ({summary.demo_users} in all: {members})"
    )
    click.echo(f"  uploads: {counts(summary.uploads)}, {summary.files_stored} files stored")
    click.echo(f"  jobs: {counts(summary.jobs)}")
    click.echo(f"  audit events: {summary.audit_events}, periodic task runs: {summary.periodic_runs}")
    if summary.password:
        # Shown once, on the terminal only: it is never logged and cannot be shown again.
        click.echo(f"Password of every @{DEMO_DOMAIN} account (shown only now): {summary.password}")
    if summary.sign_in:
        click.echo("Sign in as: " + ", ".join(f"{role} {email}" for role, email in summary.sign_in.items()))


stats_cli = AppGroup("stats", help="Daily statistics (the admin dashboard's charts).")


@stats_cli.command("backfill")
@click.option(
    "--days",
    type=click.IntRange(1, stats_service.MAX_BACKFILL_DAYS),
    default=90,
    show_default=True,
    help="How many days to roll up, ending yesterday (UTC).",
)
def stats_backfill(days: int) -> None:
    """Roll up the last DAYS days (idempotent: a day already there is replaced)."""
    started = time.perf_counter()
    done = stats_service.backfill(days)
    rows = sum(count for _day, count in done)
    elapsed = time.perf_counter() - started
    click.echo(f"rolled up {len(done)} days ({done[0][0]} to {done[-1][0]}): {rows} rows in {elapsed:.1f} s")


@stats_cli.command("rollup")
@click.option("--day", "day", type=click.DateTime(formats=["%Y-%m-%d"]), required=True, help="YYYY-MM-DD (UTC).")
def stats_rollup(day: datetime) -> None:
    """Roll up one day before today (UTC), replacing its rows."""
    try:
        rows = stats_service.rollup_day(day.date())
    except DomainError as error:
        reasons = [f"{item['field']}: {item['message']}" for item in error.extra.get("errors", [])]
        raise click.ClickException(" ".join([error.detail, *reasons])) from None
    click.echo(f"rolled up {day.date()}: {rows} rows")


def register_cli(app: Flask) -> None:
    for command in (seed_admin, worker, jobs_cli, mail_cli, roles_cli, users_cli, demo_cli, stats_cli):
        app.cli.add_command(command)
