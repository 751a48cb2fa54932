"""Seed the bench database with users, through Hearth's own models and role sync.

Run by bench/run.py after `flask db upgrade`, in a subprocess with the bench environment:

    BENCH_PASSWORD=... BENCH_USERS=500 python -m bench.seed

* `sync_roles()` writes the catalog's roles and permissions, as `flask roles sync` does;
* user 1 is the admin the bench signs in as (role `admin`); the others get `user`, every
  fifth also `viewer`, every tenth `manager`; every 25th is disabled and every 50th soft
  deleted, so the list's filters and statuses have something to do;
* every user has the same password: ONE argon2 hash (Hearth's parameters) is made and reused,
  so seeding takes a second instead of a minute;
* the admin owns ADMIN_UPLOADS uploads (rows only, no stored bytes: documents and a few
  rejected or still processing), so `/files/` lists a full page of 20 and a pager
  (bench/pages.py).

Prints one JSON line: the admin's email, the emails of users who may sign in, the counts.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

EMAIL_DOMAIN = "bench.example"
ADMIN_UPLOADS = 24  # more than one page of /files/ (20 per page)


def admin_email() -> str:
    return f"bench-admin@{EMAIL_DOMAIN}"


def admin_uploads(user_id: int, epoch: datetime) -> list:
    """The admin's file library: mostly ready documents, a few rejected or still processing,
    as `/files/` would show them after some use. Rows only: the page never reads the bytes."""
    from app.uploads.models import Upload, UploadStatus

    rows = []
    for n in range(1, ADMIN_UPLOADS + 1):
        status = UploadStatus.ready
        if n % 11 == 0:
            status = UploadStatus.rejected
        elif n % 13 == 0:
            status = UploadStatus.processing
        size = 40_000 + 7_919 * n
        created = epoch + timedelta(days=40, hours=5 * n)
        rows.append(
            Upload(
                id=f"00000000-0000-4000-8000-{n:012d}",
                user_id=user_id,
                kind="document",
                status=status,
                filename=f"report-{n:02d}.pdf",
                content_type="application/pdf",
                declared_size=size,
                size=size if status == UploadStatus.ready else None,
                key=f"uploads/{user_id}/bench-{n:04d}/report-{n:02d}.pdf",
                details={"pages": n} if status == UploadStatus.ready else {},
                error="The file's bytes do not match its declared type." if status == UploadStatus.rejected else None,
                created_at=created,
                updated_at=created,
            )
        )
    return rows


def main() -> None:
    from app import create_app
    from app.extensions import db
    from app.rbac.models import Role
    from app.rbac.service import sync_roles
    from app.users.models import User
    from app.users.passwords import hash_password

    password = os.environ["BENCH_PASSWORD"]
    count = int(os.environ.get("BENCH_USERS", "500"))
    app = create_app()
    with app.app_context():
        sync_roles()
        role = {r.name: r for r in db.session.scalars(select(Role))}
        password_hash = hash_password(password)
        epoch = datetime(2024, 1, 1, tzinfo=UTC)
        people = []
        can_sign_in = []
        for n in range(1, count + 1):
            email = admin_email() if n == 1 else f"user{n:04d}@{EMAIL_DOMAIN}"
            disabled = n > 1 and n % 25 == 0
            deleted = n > 1 and n % 50 == 0
            created = epoch + timedelta(hours=7 * n, microseconds=1234 * n)
            user = User(
                email=email,
                display_name="Bench Admin" if n == 1 else f"Bench User {n:04d}",
                password_hash=password_hash,
                is_active_account=not disabled,
                email_verified_at=created + timedelta(minutes=5) if n % 3 else None,
                created_at=created,
                last_login_at=created + timedelta(days=2) if n % 4 else None,
                deleted_at=created + timedelta(days=30) if deleted else None,
            )
            if n == 1:
                user.roles = [role["admin"]]
            else:
                user.roles = [role["user"]]
                if n % 5 == 0:
                    user.roles.append(role["viewer"])
                if n % 10 == 0:
                    user.roles.append(role["manager"])
            people.append(user)
            if n > 1 and not disabled and not deleted:
                can_sign_in.append(email)
        db.session.add_all(people)
        db.session.flush()
        db.session.add_all(admin_uploads(people[0].id, epoch))
        db.session.commit()
        listed = sum(1 for user in people if user.deleted_at is None)
    print(
        json.dumps(
            {
                "admin_email": admin_email(),
                "users": count,
                "listed": listed,
                "admin_uploads": ADMIN_UPLOADS,
                "sign_in_emails": can_sign_in,
            }
        )
    )


if __name__ == "__main__":
    main()
