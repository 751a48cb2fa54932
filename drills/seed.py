"""Seed the drills' virtual users, through Hearth's own factories (app.users.factories).

Run by drills/__main__.py in a subprocess with the cluster database in the environment:

    DATABASE_URL=... DRILLS_PASSWORD=... DRILLS_USERS=20 python -m drills.seed

Every user holds the `user` role, a confirmed address and ONE shared argon2 hash (made once with
the app's parameters), so seeding takes a second. Idempotent: existing accounts are kept.
Prints one JSON line: the emails.
"""

from __future__ import annotations

import json
import os

from sqlalchemy import select

EMAIL_DOMAIN = "drills.example"


def email_of(n: int) -> str:
    return f"vuser{n:02d}@{EMAIL_DOMAIN}"


def main() -> None:
    from app import create_app
    from app.core.database import utcnow
    from app.extensions import db
    from app.rbac.service import sync_roles
    from app.users.factories import new_user
    from app.users.models import User
    from app.users.passwords import hash_password

    password = os.environ["DRILLS_PASSWORD"]
    count = int(os.environ.get("DRILLS_USERS", "20"))
    app = create_app()
    with app.app_context():
        sync_roles()
        emails = [email_of(n) for n in range(1, count + 1)]
        existing = set(db.session.scalars(select(User.email).where(User.email.in_(emails))))
        password_hash = hash_password(password)
        for n, email in enumerate(emails, start=1):
            if email not in existing:
                new_user(email, password_hash, display_name=f"Drill user {n:02d}", email_verified_at=utcnow())
        db.session.commit()
    print(json.dumps({"emails": emails}))  # noqa: T201 - the answer, read by drills/__main__.py


if __name__ == "__main__":
    main()
