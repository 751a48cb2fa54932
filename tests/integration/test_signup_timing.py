"""Sign-up does not tell which addresses have accounts (issue 10, finding 5): the answer is the
same page, and taken and new addresses cost the same work (one argon2 hash each), so their
response times cannot be told apart either."""

from __future__ import annotations

import re
import statistics
import time

from app.extensions import db
from app.users.models import User

PASSWORD = "correct horse battery staple"
TRIES = 100
CSRF_TOKEN = re.compile(r'(?<=value=")[^"]*|(?<=content=")[\w.-]{40,}(?=")|(?<="X-CSRFToken": ")[^"]*')


def _timed_signup(client, token: str, email: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post(
        "/auth/signup",
        data={"csrf_token": token, "email": email, "display_name": "Someone", "password": PASSWORD},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed, response.get_data(as_text=True)


def test_taken_and_new_addresses_answer_alike_and_in_the_same_time(make_app, make_user, app):
    make_user(email="taken@example.com")
    signup_app = make_app(rate_limit_default="100000 per minute")
    client = signup_app.test_client()
    html = client.get("/auth/signup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    timings: dict[str, list[float]] = {"taken": [], "new": []}
    pages: dict[str, str] = {}
    for n in range(TRIES):
        # Alternate (and vary the client address past the sign-up limit) so drift hits both.
        client.environ_base["REMOTE_ADDR"] = f"10.{n // 250}.{n % 250}.1"
        for kind in ("taken", "new") if n % 2 else ("new", "taken"):
            email = "taken@example.com" if kind == "taken" else f"new{n}@example.com"
            elapsed, page = _timed_signup(client, token, email)
            timings[kind].append(elapsed)
            # The CSRF token is re-signed each second: compare everything else.
            pages[kind] = CSRF_TOKEN.sub("", page.replace(email, "EMAIL"))
    assert pages["taken"] == pages["new"]
    taken, new = statistics.median(timings["taken"]), statistics.median(timings["new"])
    assert abs(taken - new) / max(taken, new) < 0.10, f"medians: taken {taken * 1000:.1f} ms, new {new * 1000:.1f} ms"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == TRIES + 1
