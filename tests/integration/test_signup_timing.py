"""Sign-up does not tell which addresses have accounts (issue 10, finding 5): the answer is the
same page, and taken and new addresses cost the same work (one argon2 hash each), so their
response times cannot be told apart either.

The timing runs in a process of its own, like a server: the test session keeps hundreds of
apps alive, and their cache-invalidation listeners wake on every new user, which would charge
the new-address branch for work no real server does."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from typing import Any

from app.extensions import db
from app.users.models import User
from tests.support import PRODUCTION_HASHING, PROJECT_ROOT

PASSWORD = "correct horse battery staple"
TRIES = 50  # 100 sign-ups at production cost (~17 s): the medians of 50 each are stable to well under 10 %
CSRF_TOKEN = re.compile(r'(?<=value=")[^"]*|(?<=content=")[\w.-]{40,}(?=")|(?<="X-CSRFToken": ")[^"]*')


def measure(settings: dict[str, Any], tries: int) -> dict[str, Any]:
    """Alternate sign-ups for a taken and for new addresses; their timings and answer pages."""
    from app import create_app

    # Jobs go to the queue as in production, where a consumer elsewhere sends the emails:
    # running them inline (the test default) would time the mail rendering, not the answer.
    client = create_app({**settings, "rate_limit_default": "100000 per minute", "jobs_immediate": False}).test_client()
    html = client.get("/auth/signup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    timings: dict[str, list[float]] = {"taken": [], "new": []}
    pages: dict[str, str] = {}
    for n in range(tries):
        # Alternate (and vary the client address past the sign-up limit) so drift hits both.
        client.environ_base["REMOTE_ADDR"] = f"10.{n // 250}.{n % 250}.1"
        for kind in ("taken", "new") if n % 2 else ("new", "taken"):
            email = "taken@example.com" if kind == "taken" else f"new{n}@example.com"
            form = {"csrf_token": token, "email": email, "display_name": "Someone", "password": PASSWORD}
            started = time.perf_counter()
            response = client.post("/auth/signup", data=form)
            timings[kind].append(time.perf_counter() - started)
            assert response.status_code == 200
            # The CSRF token is re-signed each second: compare everything else.
            pages[kind] = CSRF_TOKEN.sub("", response.get_data(as_text=True).replace(email, "EMAIL"))
    return {"timings": timings, "pages": pages}


def test_taken_and_new_addresses_answer_alike_and_in_the_same_time(base_settings, make_user, app):
    make_user(email="taken@example.com")
    script = (
        "import json, sys; from tests.integration.test_signup_timing import measure; "
        "print(json.dumps(measure(json.load(sys.stdin), int(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(TRIES)],
        # The cost whose timing must not tell, and a Redis prefix of its own: the test session's
        # many apps listen on the session prefix's invalidation channel, and waking them all on
        # each new account would burn the shared cores only while the new branch is timed.
        input=json.dumps(
            {**base_settings, **PRODUCTION_HASHING, "redis_prefix": f"{base_settings['redis_prefix']}-timing"}
        ),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=True,
    )
    if base_settings["redis_url"]:  # the emails it queued under its own prefix: nobody consumes them
        import redis

        client = redis.Redis.from_url(base_settings["redis_url"])
        for key in client.scan_iter(match=f"*{base_settings['redis_prefix']}-timing*"):
            client.delete(key)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pages"]["taken"] == result["pages"]["new"]
    taken, new = (statistics.median(result["timings"][kind]) for kind in ("taken", "new"))
    assert abs(taken - new) / max(taken, new) < 0.10, f"medians: taken {taken * 1000:.1f} ms, new {new * 1000:.1f} ms"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == TRIES + 1
