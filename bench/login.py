"""The login scenario of `make bench` (bench/README.md, "Login"): `POST /api/v1/auth/token`
against the argon2 ceiling, at several numbers of concurrent clients, and what a storm of
sign-ins does to the users list served by the same server.

* **Ceiling** (`argon2_ceiling`): one argon2 verify with Hearth's parameters, in this process,
  from one thread; `cores / CPU seconds per verify` is the most sign-ins the machine could do
  if it did nothing else.
* **Storm** at each of `--storm-connections` (4, 8 and 16 by default): that many clients in a
  closed loop, each request signing in a different user (rotating over the active ones) from
  its own client address (`X-Forwarded-For`, the server trusting one proxy hop), so neither
  the route's per-client limit nor a shared row is what is measured.
* **The list meanwhile**: `GET /api/v1/users?per_page=50` (JWT) at a fixed rate (a share of its
  peak), alone once, then during a storm at each concurrency; `p99_ratio` is its p99 during
  the storm over its p99 alone.

The headline figures (`ratio_ceiling`, `p99_ratio`, and `storm`, `storm_with_list`,
`list_during_storm`) are those of the **largest** concurrency (16 by default: the issue's
16 connections, the hardest case); every concurrency's figures are under `by_clients`, and
`best_ratio_ceiling` is the best of them.

bench/run.py calls `scenario` with its own helpers (the `Target` type, `fixed_summary` and
`log`), so this module needs nothing from run.py at import time.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from bench import loadgen
from bench.workload import USERS_PATH

TOKEN_PATH = "/api/v1/auth/token"
DEFAULT_CLIENTS = (4, 8, 16)
SETTLE_SECONDS = 1.0  # between runs: the previous run's last logins leave the server's queue


def concurrencies(option: int | str | None) -> tuple[int, ...]:
    """`--storm-connections` as a sorted tuple: "4,8,16", or one number."""
    if option is None or option == "":
        return DEFAULT_CLIENTS
    values = {int(part) for part in str(option).split(",") if part.strip()}
    if not values or min(values) < 1:
        raise SystemExit(f"--storm-connections needs positive numbers, got {option!r}")
    return tuple(sorted(values))


def argon2_ceiling(samples: int) -> dict:
    """One argon2 verify of Hearth's parameters, called from one thread in-process: median
    wall time and CPU time of N.

    With parallelism p > 1, libargon2 runs the p lanes on p threads, so one verify keeps up
    to p cores busy and its wall time is shorter than its CPU time: `cores / wall` would
    count the same cores twice. The ceiling is therefore `cores / CPU seconds per verify`
    (the most verifications the machine can do if it did nothing else); `cores / wall` is
    kept as `ceiling_wall_per_s` for comparison. No app context here, so the verifications run
    in this thread, not on Hearth's argon2 pool (app.users.passwords), with its default parameters."""
    from app.users.passwords import DEFAULT_HASHER

    hasher = DEFAULT_HASHER

    password = secrets.token_urlsafe(18)
    digest = hasher.hash(password)
    walls, cpus = [], []
    for _ in range(samples):
        wall, cpu = time.perf_counter(), time.process_time()  # process: every argon2 lane thread
        if not hasher.verify(digest, password):
            raise SystemExit("argon2 verify failed")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    cores = os.cpu_count() or 1
    wall_ms = statistics.median(walls) * 1000
    cpu_ms = statistics.median(cpus) * 1000
    return {
        "parameters": {
            "time_cost": hasher.time_cost,
            "memory_kib": hasher.memory_cost,
            "parallelism": hasher.parallelism,
        },
        "samples": samples,
        "verify_wall_ms": round(wall_ms, 1),
        "verify_cpu_ms": round(cpu_ms, 1),
        "cores": cores,
        "ceiling_per_s": round(cores / (cpu_ms / 1000), 2),
        "ceiling_wall_per_s": round(cores / (wall_ms / 1000), 2),
    }


def users_namespace_version(redis_client, redis_prefix: str) -> int:
    value = redis_client.get(f"{redis_prefix}:cache:v:users")
    return int(value) if value is not None else 0


def storm_run(server, spec: loadgen.RequestSpec, clients: int, seconds: float) -> dict:
    """`clients` closed-loop sign-in clients for `seconds`; logins/s and the server's CPU per login."""
    cpu_before = server.cpu_seconds()
    run = loadgen.run(server.url(TOKEN_PATH), clients, seconds, processes=min(2, clients), spec=spec, rate=None)
    cpu = server.cpu_seconds() - cpu_before
    ok = run["statuses"].get("200", 0)
    served = ok + run["late_statuses"].get("200", 0)  # the CPU measured covers the late ones too
    return {
        "clients": clients,
        "seconds": seconds,
        "logins": ok,
        "logins_per_s": round(ok / seconds, 2),
        "p50_ms": round(run["p50_us"] / 1000, 1),
        "p99_ms": round(run["p99_us"] / 1000, 1),
        "statuses": run["statuses"],
        "errors": run["status_errors"] + run["read_errors"] + run["timeouts"] + run["connect_errors"],
        "server_cpu_ms_per_login": round(cpu / served * 1000, 1) if served else None,
        "loadgen_cpu_s": run["loadgen_cpu_s"],
    }


def _storm_into(into: dict, server, spec: loadgen.RequestSpec, clients: int, seconds: float) -> None:
    into["storm"] = storm_run(server, spec, clients, seconds)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


def scenario(
    ctx: Any,
    make_target: Callable[..., Any],
    fixed_summary: Callable[[dict], dict],
    log: Callable[[str], None],
    redis_client,
    redis_prefix: str,
) -> dict:
    """Logins per second against the argon2 ceiling at each concurrency, and the list's latency
    alone and during each storm. `ctx` is bench/run.py's Context; `make_target` its Target."""
    args = ctx.args
    server = ctx.servers["full-login"]
    result: dict = {"argon2": argon2_ceiling(args.argon2_samples)}
    ceiling = result["argon2"]["ceiling_per_s"]
    log(
        f"  argon2 verify: {result['argon2']['verify_wall_ms']} ms wall, {result['argon2']['verify_cpu_ms']} ms CPU; "
        f"ceiling {ceiling}/s on {result['argon2']['cores']} cores"
    )
    password = ctx.seed["password"]
    bodies = tuple(json.dumps({"email": email, "password": password}).encode() for email in ctx.seed["sign_in_emails"])
    spec = loadgen.RequestSpec(method="POST", bodies=bodies, unique_client=True)
    listing = make_target("list", server, USERS_PATH, ctx.auth())
    peak = ctx.results.get("list", {}).get("full", {}).get("rps")
    list_rate = max(10.0, round((peak or 400) * args.storm_list_share))
    clients_list = concurrencies(args.storm_connections)
    result.update(list_rate=list_rate, clients=list(clients_list), headline_clients=clients_list[-1])

    # 1. The list alone, at the fixed rate the storm runs will use.
    result["list_alone"] = fixed_summary(ctx.fixed_rate(listing, list_rate, args.storm))
    alone_p99 = result["list_alone"]["p99_ms"]
    log(f"  list at {list_rate:.0f} req/s alone: p50 {result['list_alone']['p50_ms']} ms, p99 {alone_p99} ms")

    version_before = users_namespace_version(redis_client, redis_prefix)
    by_clients: dict[str, dict] = {}
    for clients in clients_list:
        time.sleep(SETTLE_SECONDS)
        # 2. The storm alone: logins per second against the ceiling.
        storm = storm_run(server, spec, clients, args.storm)
        # 3. Storm and list at once: the list's latency while the storm runs.
        time.sleep(SETTLE_SECONDS)
        during: dict = {}
        thread = threading.Thread(target=_storm_into, args=(during, server, spec, clients, args.storm))
        thread.start()
        time.sleep(1.5)  # the storm is under way
        listed = fixed_summary(ctx.fixed_rate(listing, list_rate, max(2, args.storm - 3)))
        thread.join()
        entry = {
            "storm": storm,
            "ratio_ceiling": _ratio(storm["logins_per_s"], ceiling),
            "storm_with_list": during["storm"],
            "list_during_storm": listed,
            "p99_ratio": _ratio(listed["p99_ms"], alone_p99),
        }
        by_clients[str(clients)] = entry
        log(
            f"  {clients:>2} clients: {storm['logins_per_s']}/s ({entry['ratio_ceiling']:.2f}x the ceiling), "
            f"login p50 {storm['p50_ms']} ms p99 {storm['p99_ms']} ms, "
            f"{storm['server_cpu_ms_per_login']} ms CPU/login; "
            f"list during it p50 {listed['p50_ms']} ms p99 {listed['p99_ms']} ms ({entry['p99_ratio']}x alone)"
        )
    result["users_namespace_bumps"] = users_namespace_version(redis_client, redis_prefix) - version_before
    result["by_clients"] = by_clients
    headline = by_clients[str(clients_list[-1])]
    result.update(
        storm_connections=clients_list[-1],
        storm=headline["storm"],
        storm_with_list=headline["storm_with_list"],
        list_during_storm=headline["list_during_storm"],
        ratio_ceiling=headline["ratio_ceiling"],
        p99_ratio=headline["p99_ratio"],
        best_ratio_ceiling=max(entry["ratio_ceiling"] for entry in by_clients.values()),
    )
    log(f"  users cache namespace bumps during the storms: {result['users_namespace_bumps']}")
    return result
