"""One real cluster for the whole session (cluster.harness): nginx in front of two gunicorn
instances, one huey consumer per queue per instance, on this machine's PostgreSQL and Redis
(a database and a Redis prefix of this run's own, dropped afterwards) and a moto S3 server.

Tests talk HTTP to the processes, like any client. They set state up through HTTP too (sign-up,
the admin API); they read the database (`sql`) only to count and check job rows.

Fixtures:
- `cluster`: the running cluster; `host`: nginx's `localhost:<port>`, sent as `Host` everywhere;
- `browser()` / `api()`: a new browser or API client with an address of its own;
- `admin`: an API client and a fresh access token of the seeded administrator;
- `make_user(role=None)`: a new account made through the sign-up form, its id and email;
- `sql(statement, **params)`: rows from the cluster's database.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from cluster import Cluster, ClusterConfig
from tests.cluster.clients import PASSWORD, Api, Browser, nginx_host

RUN_ID = uuid.uuid4().hex[:10]
POSTGRES_URL = os.environ.get("CLUSTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("CLUSTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Cheapest argon2 (development allows it): sign-ins cost microseconds, not ~250 ms, so the
# suite's many sign-ins time the cluster, not the hashing, on a 2-core machine shared with others.
CLUSTER_ENV = {
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "8",
    "PASSWORD_HASH_PARALLELISM": "1",
}


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    database = f"hearth_cluster_test_{RUN_ID}"
    prefix = f"hearth-cluster-test-{RUN_ID}"
    workdir = Path(tempfile.mkdtemp(prefix=f"hearth-cluster-test-{RUN_ID}-"))
    config = ClusterConfig(
        port=0,
        database=database,
        postgres_url=POSTGRES_URL,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        workdir=workdir,
        private_services=False,
        drop_database=True,
        env=dict(CLUSTER_ENV),
    )
    # A CI or pytest timeout stops this process with SIGTERM, whose default action would skip
    # the clean-up below and leave the cluster's processes (each in a session of its own) running.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    failed = False
    try:
        with Cluster(config) as running:
            yield running
    except BaseException:
        failed = True
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        _drop_database(database)
        _forget_redis_keys(prefix)
        if failed or os.environ.get("CLUSTER_TEST_KEEP_LOGS"):
            print(f"cluster logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _drop_database(name: str) -> None:
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _forget_redis_keys(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    for pattern in (f"{prefix}*", f"*{prefix.replace('-', '')}*", f"*{prefix}*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)


@pytest.fixture(scope="session")
def host(cluster: Cluster) -> str:
    return nginx_host(cluster.url)


@pytest.fixture(scope="session")
def engine(cluster: Cluster) -> Iterator[Engine]:
    engine = create_engine(cluster.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture()
def sql(engine: Engine) -> Callable[..., list[Any]]:
    def run(statement: str, **params: Any) -> list[Any]:
        with engine.begin() as connection:
            return list(connection.execute(text(statement), params))

    return run


@pytest.fixture()
def browser(cluster: Cluster, host: str) -> Callable[[], Browser]:
    return lambda: Browser(host, list(cluster.instance_urls))


@pytest.fixture()
def api(cluster: Cluster, host: str) -> Callable[[], Api]:
    return lambda: Api(host, list(cluster.instance_urls))


@dataclass
class Admin:
    client: Api
    token: str  # fresh: a step-up operation accepts it (FRESH_AUTH_MINUTES)

    def call(self, instance: int, method: str, path: str, **kwargs: Any):
        return self.client.call(instance, method, path, self.token, **kwargs)

    def user_id(self, email: str) -> int:
        found = self.call(0, "GET", "/api/v1/users", params={"q": email})
        assert found.status_code == 200, found.text[:300]
        [user] = [item for item in found.json()["items"] if item["email"] == email]
        return user["id"]

    def set_roles(self, instance: int, user_id: int, roles: list[str]) -> None:
        changed = self.call(instance, "PUT", f"/api/v1/admin/users/{user_id}/roles", json={"roles": roles})
        assert changed.status_code == 200, (changed.status_code, changed.text[:300])


@pytest.fixture()
def admin(cluster: Cluster, api: Callable[[], Api]) -> Admin:
    client = api()
    return Admin(client, client.tokens(0, cluster.admin_email, cluster.admin_password)["access_token"])


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    password: str = PASSWORD


@pytest.fixture()
def make_user(browser: Callable[[], Browser], admin: Admin) -> Callable[..., Account]:
    """Sign up a new account through the form (on instance 0), optionally with `role`."""

    def make(role: str | None = None) -> Account:
        email = f"u{uuid.uuid4().hex[:12]}@cluster.example.org"
        signup = browser().post_form(
            0, "/auth/signup", {"email": email, "display_name": "Cluster", "password": PASSWORD}
        )
        assert signup.status_code == 200, (signup.status_code, signup.text[:300])
        account = Account(admin.user_id(email), email)
        if role:
            admin.set_roles(0, account.id, [role])
        return account

    return make
