"""Flask-Migrate, set up only where migrations are used.

Importing Flask-Migrate imports Alembic: about half a second of start-up that a web worker or
a queue consumer never needs (issue 11: each process ready in under a second). So `create_app`
binds Flask-Migrate eagerly only when it is already imported (the test suite imports it before
creating apps; a script that migrates imports it first), and otherwise registers `flask db` as
a lazy command group that binds it when the CLI resolves a `db` subcommand. The start-up
probe, which compares the database with the migration heads, calls `ensure_migrations` first.
"""

from __future__ import annotations

import sys

import click
from flask import Flask

from app.config import PROJECT_ROOT
from app.extensions import db

MIGRATIONS_DIRECTORY = PROJECT_ROOT / "migrations"


def ensure_migrations(app: Flask) -> None:
    """Bind Flask-Migrate to `app` (once): `app.extensions["migrate"]` and the `flask db` commands."""
    if "migrate" in app.extensions:
        return
    from flask_migrate import Migrate

    Migrate(app, db, directory=str(MIGRATIONS_DIRECTORY), render_as_batch=True, compare_type=True)


class LazyMigrationsGroup(click.Group):
    """`flask db …`: Flask-Migrate's group, imported when the CLI first looks inside it."""

    def __init__(self, app: Flask):
        super().__init__(name="db", help="Perform database migrations (Flask-Migrate).")
        self.app = app

    def _commands(self) -> click.Group:
        ensure_migrations(self.app)
        from flask_migrate.cli import db as migrations_group

        return migrations_group

    # The real group parses its own options (`-d`, `-x`) and runs its own callback.
    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra):
        return self._commands().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context):
        return self._commands().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._commands().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._commands().get_command(ctx, name)


def init_migrations(app: Flask) -> None:
    if "flask_migrate" in sys.modules:
        ensure_migrations(app)
    else:
        app.cli.add_command(LazyMigrationsGroup(app))
