"""`flask` commands: seed-admin, worker, jobs sweep, mail test, roles, users, demo seed."""

from __future__ import annotations

import os
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.auth.accounts import set_password
from app.core.runtime import settle_after_startup
from app.demo import DEFAULT_USERS, DEMO_DOMAIN, MAX_USERS
from app.errors import DomainError
from app.jobs.queues import QUEUES, QUEUES_KEY
from app.jobs.service import sweep
from app.logging import get_logger
from app.mail.service import queue_test_email
from app.rbac.service import sync_roles
from app.users.service import ensure_admin

log = get_logger("hearth.cli")
jobs_cli = AppGroup("jobs", help="Background jobs.")
mail_cli = AppGroup("mail", help="Outgoing email.")


@click.command("seed-admin")
@with_appcontext
def seed_admin() -> None:
    """Make sure an administrator exists (ADMIN_EMAIL / ADMIN_PASSWORD, or generated once)."""
    try:
        account = ensure_admin(os.environ.get("ADMIN_EMAIL") or None, os.environ.get("ADMIN_PASSWORD") or None)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    if not account.created:
        click.echo(f"Admin account: {account.user.email} (already exists)")
        return
    click.echo(f"Admin account created: {account.user.email}")
    if account.generated_password:
        # Shown once, on the terminal only: it is never logged and cannot be shown again.
        click.echo(f"Generated password (shown only now): {account.generated_password}")


@click.command("worker")
@with_appcontext
@click.argument("queue", type=click.Choice(["emails", "uploads", "sync", "reports"]))
@click.option("--workers", type=int, default=None, help="Threads; defaults to the queue's concurrency.")
def worker(queue: str, workers: int | None) -> None:
    """Run a huey consumer for QUEUE (one process per queue; run more to scale out)."""
    huey = current_app.extensions[QUEUES_KEY].hueys[queue]
    if huey.immediate:
        raise click.ClickException("JOBS_IMMEDIATE is set: tasks run inline, there is no queue to consume")
    consumer = huey.create_consumer(
        workers=workers or QUEUES[queue].workers,
        worker_type="thread",
        periodic=queue == "sync",  # the sweeper runs on the sync queue's consumers
        initial_delay=0.05,
        backoff=1.5,
        max_delay=1.0,
        check_worker_health=True,
        scheduler_interval=1,
    )
    settle_after_startup()
    log.info("worker_starting", queue=queue, workers=consumer.workers)
    consumer.run()


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


def register_cli(app: Flask) -> None:
    for command in (seed_admin, worker, jobs_cli, mail_cli, roles_cli, users_cli, demo_cli):
        app.cli.add_command(command)
