"""What one `GET /api/v1/users` costs in round trips: SQL statements and Redis commands per
request, with the L2 cache hit, forced to miss, and disabled.

Run by bench/run.py in a subprocess with the bench environment (the same database, Redis
and secrets as the servers), so the bearer token the servers issued is valid here:

    BENCH_TOKEN=... python -m bench.anatomy

In-process, through Flask's test client, one app per cache mode. Prints one JSON line.
"""

from __future__ import annotations

import collections
import json
import os

from bench.workload import USERS_PATH

WARMUP = 5
COUNTED = 20
MODES = {"hit": {}, "miss": {"cache_force_miss": True}, "disabled": {"cache_enabled": False}}


def main() -> None:
    import redis.client
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from app import create_app

    statements: collections.Counter = collections.Counter()
    commands: collections.Counter = collections.Counter()
    counting = False

    @event.listens_for(Engine, "before_cursor_execute")
    def _count_sql(conn, cursor, statement, parameters, context, executemany):
        if counting:
            statements[" ".join(statement.split())[:110]] += 1

    original_execute = redis.client.Redis.execute_command
    original_pipeline = redis.client.Pipeline.execute

    def execute_command(self, *args, **options):
        if counting and not isinstance(self, redis.client.Pipeline):
            commands[str(args[0]).upper()] += 1
        return original_execute(self, *args, **options)

    def pipeline_execute(self, *args, **kwargs):
        if counting:
            commands["PIPELINE(" + ",".join(str(c[0][0]).upper() for c in self.command_stack) + ")"] += 1
        return original_pipeline(self, *args, **kwargs)

    redis.client.Redis.execute_command = execute_command
    redis.client.Pipeline.execute = pipeline_execute

    headers = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
    report = {}
    for mode, overrides in MODES.items():
        app = create_app(overrides)
        client = app.test_client()
        for _ in range(WARMUP):
            response = client.get(USERS_PATH, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"{mode}: {USERS_PATH} answered {response.status_code}: {response.data[:300]!r}")
        statements.clear()
        commands.clear()
        counting = True
        for _ in range(COUNTED):
            client.get(USERS_PATH, headers=headers)
        counting = False
        report[mode] = {
            "sql_per_request": round(sum(statements.values()) / COUNTED, 2),
            "redis_per_request": round(sum(commands.values()) / COUNTED, 2),
            "sql": {text: round(n / COUNTED, 2) for text, n in statements.most_common()},
            "redis": {name: round(n / COUNTED, 2) for name, n in commands.most_common()},
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
