"""Migrations upgrade and downgrade cleanly on the profile's database (SQLite or PostgreSQL)
and describe exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app.extensions import db


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_and_upgrade_again_on_a_fresh_database(make_app, new_database):
    app = make_app(database_url=new_database())
    with app.app_context():
        upgrade()
        assert _tables() == {table.name for table in db.metadata.sorted_tables}
        assert {"users", "jobs"} <= _tables()
        downgrade(revision="base")
        assert _tables() == set()
        upgrade()
        assert {"users", "jobs"} <= _tables()
        db.engine.dispose()


def test_migrations_match_the_models(make_app, new_database):
    app = make_app(database_url=new_database())
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"


def test_constraint_names_follow_the_naming_convention(app):
    with app.app_context():
        inspector = inspect(db.engine)
        assert inspector.get_pk_constraint("users")["name"] in ("pk_users", None)  # SQLite may not report it
        indexes = {index["name"] for index in inspector.get_indexes("users")}
        assert "ix_users_email" in indexes


def test_0002_turns_is_admin_flags_into_the_admin_role(make_app, new_database):
    from sqlalchemy import text

    app = make_app(database_url=new_database())
    with app.app_context():
        upgrade(revision="0001")
        db.session.execute(
            text(
                "INSERT INTO users (email, display_name, password_hash, is_active, is_admin, created_at, updated_at) "
                "VALUES ('old@example.com', 'Old', 'x', TRUE, TRUE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        db.session.commit()
        upgrade()
        roles = (
            db.session.execute(
                text(
                    "SELECT roles.name FROM user_roles JOIN roles ON roles.id = user_roles.role_id "
                    "JOIN users ON users.id = user_roles.user_id WHERE users.email = 'old@example.com'"
                )
            )
            .scalars()
            .all()
        )
        assert roles == ["admin"]
        db.session.rollback()  # release this session's locks before alembic alters the tables
        downgrade(revision="0001")
        assert db.session.execute(text("SELECT is_admin FROM users")).scalar_one() in (True, 1)
        db.session.remove()
        db.engine.dispose()
