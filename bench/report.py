"""bench/results.md: every figure of bench/results.json as Markdown tables."""

from __future__ import annotations


def _fmt(value, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value:,}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _load_row(name: str, s: dict, extra: list[str]) -> list[str]:
    return [
        name,
        _fmt(s["rps"]),
        f"{_fmt(s['rps_min'], 0)}–{_fmt(s['rps_max'], 0)}",
        _fmt(s["p50_ms"], 2),
        _fmt(s["p99_ms"], 2),
        _fmt(s["cpu_us_per_request"], 0),
        _fmt(s["errors"]),
        *extra,
    ]


LOAD_HEADER = ["app", "req/s", "rounds req/s", "p50 ms", "p99 ms", "CPU µs/req", "errors"]


def _met(met: bool | None) -> str:
    return "–" if met is None else "yes" if met else "**no**"


def _comparison_rows(s: dict) -> list[list[str]]:
    """Full and bare rows of a full-vs-bare comparison, with the ratios and their rounds."""
    rounds = s["ratio_rps_rounds"]
    cpu_rounds = s.get("ratio_cpu_rounds", [])
    spread = f" (rounds {min(rounds):.2f}–{max(rounds):.2f})" if len(rounds) > 1 else ""
    cpu_spread = f" (rounds {min(cpu_rounds):.2f}–{max(cpu_rounds):.2f})" if len(cpu_rounds) > 1 else ""
    ratio = f"CPU {s['ratio_cpu']:.2f}×{cpu_spread}; {s.get('ratio_rps_median', s['ratio_rps']):.2f}× req/s{spread}"
    return [_load_row("full stack", s["full"], [ratio]), _load_row("bare Flask", s["bare"], [""])]


def _sizing(r: dict, sizes: list[dict]) -> list[str]:
    """Page and JSON at every gunicorn size, side by side."""
    others = r.get("sizes") or {}
    if not others:
        return []
    out = ["## Sizing: page and JSON at each gunicorn size (workers × threads)", ""]
    rows = []
    connections = {s["size"]: s["connections"] for s in sizes}
    for size in [sizes[0]["size"], *others]:
        found = r if size == sizes[0]["size"] else others[size]
        for key, name in (("page", "fortunes"), ("json", "hello JSON")):
            s = found.get(key)
            if not s:
                continue
            rows.append(
                [
                    size,
                    _fmt(connections.get(size, s.get("connections"))),
                    name,
                    _fmt(s["full"]["rps"]),
                    _fmt(s["bare"]["rps"]),
                    f"{s.get('ratio_rps_median', s['ratio_rps']):.2f}×",
                    _fmt(s["full"]["cpu_us_per_request"], 0),
                    _fmt(s["bare"]["cpu_us_per_request"], 0),
                    f"**{s['ratio_cpu']:.2f}×**",
                    _switches(s["full"]),
                    _switches(s["bare"]),
                ]
            )
    out += _table(
        [
            "size",
            "connections",
            "endpoint",
            "full req/s",
            "bare req/s",
            "req/s full/bare",
            "full CPU µs/req",
            "bare CPU µs/req",
            "CPU full/bare",
            "full switches/req (vol./invol.)",
            "bare switches/req",
        ],
        rows,
    )
    return [
        *out,
        f"The targets are judged at {sizes[0]['size']} (what a 2-core host runs); bench/README.md explains why the "
        "sizes disagree.",
        "",
    ]


def _switches(summary: dict) -> str:
    voluntary = summary.get("voluntary_switches_per_request")
    involuntary = summary.get("involuntary_switches_per_request")
    return "–" if voluntary is None else f"{voluntary:.1f} / {involuntary:.1f}"


def _pipeline_rows(full: dict, bare: dict) -> list[list[str]]:
    """Hooks (full stack), then the view and Flask's own steps side by side with bare Flask."""
    rows = [[f"`{hook['name']}`", _fmt(hook["us"], 1), "", _fmt(hook["calls"], 2)] for hook in full["hooks"]]
    bare_hooks = ", ".join(f"`{hook['name']}` {hook['us']:.1f}" for hook in bare["hooks"])
    rows.append([f"bare Flask's hooks ({bare_hooks or 'none'})", "", _fmt(bare["hooks_us"], 1), ""])
    rows.append(["view (the empty handler)", _fmt(full["view_us"], 1), _fmt(bare["view_us"], 1), "1"])
    bare_steps = {step["name"]: step["us"] for step in bare.get("flask", [])}
    rows += [
        [f"*{step['name']}*", _fmt(step["us"], 1), _fmt(bare_steps.get(step["name"]), 1), "1"]
        for step in full.get("flask", [])
    ]
    if "unattributed_us" in full:
        rows.append(
            [
                "*the rest: WSGI response (status, headers, body), signals, noise*",
                _fmt(full["unattributed_us"], 1),
                _fmt(bare.get("unattributed_us"), 1),
                "",
            ]
        )
    rows.append(["**Flask dispatch + rest** (the italic rows)", _fmt(full["rest_us"], 1), _fmt(bare["rest_us"], 1), ""])
    if "attributed_total_us" in full:
        rows.append(
            [
                "sum of the rows (instrumented passes, timers' cost removed)",
                _fmt(full["attributed_total_us"], 1),
                _fmt(bare.get("attributed_total_us"), 1),
                "",
            ]
        )
    rows.append(
        ["**total** (plain passes: what counts)", f"**{full['cpu_us']:,.1f}**", f"**{bare['cpu_us']:,.1f}**", ""]
    )
    return rows


def _pipeline(p: dict) -> list[str]:
    """The empty handler: each hook's CPU per request in-process, and full vs bare under gunicorn."""
    out = ['## The pipeline alone: the empty handler (`""`, 204)', ""]
    for name, path in (p.get("in_process") or {}).items():
        full, bare = path["full"], path["bare"]
        out += [
            f"### In-process, {name} path `{path['path']}`: full {full['cpu_us']:,.0f} µs, bare {bare['cpu_us']:,.0f} "
            f"µs CPU per request → pipeline **{path['pipeline_us']:,.0f} µs**",
            "",
            f"`app(environ, start_response)` called directly, {full['requests']:,} requests × {full['rounds']} "
            f"passes, median (totals of the passes: {', '.join(f'{x:,.0f}' for x in full['cpu_us_rounds'])} µs); "
            f"hooks timed with the thread-CPU clock in passes of their own, less the timer's own "
            f"{full['timer_bias_ns']:,} ns per call (bench/pipeline.py).",
            "",
        ]
        out += _table(["where", "full stack µs/req", "bare Flask µs/req", "calls/req"], _pipeline_rows(full, bare))
        out += [f"**Pipeline = full − bare: {path['pipeline_us']:,.1f} µs per request.**", ""]
    gunicorn = p.get("gunicorn") or {}
    if gunicorn:
        out += ["### Under gunicorn (closed loop, server CPU per request)", ""]
        for name, s in gunicorn.items():
            out += [f"{name} path `{s['path']}`: pipeline (full − bare CPU) **{s['pipeline_us']:,.0f} µs**", ""]
            out += _table([*LOAD_HEADER, "full/bare"], _comparison_rows(s))
    return out


def _startup(st: dict) -> list[str]:
    """Each process from interpreter start to ready, and the web process's slowest imports."""
    out = [f"## Start-up: interpreter start to ready (median of {st['repeats']})", ""]
    out += _table(
        ["process", "command", "ready s", "runs s", "CPU s"],
        [
            [
                name,
                f"`{p['command']}`",
                f"**{p['ready_s']:.2f}**",
                ", ".join(f"{x:.2f}" for x in p["runs_s"]),
                _fmt(p["cpu_s"], 2),
            ]
            for name, p in st["processes"].items()
        ],
    )
    web = st["processes"].get("web")
    if web:
        out += [
            f"Web: `import app` {web['import_app_s']:.2f} s, then `import wsgi` (the rest of the imports and "
            f"`create_app()`) {web['wsgi_s']:.2f} s.",
            "",
        ]
    imports = st.get("importtime")
    if imports:
        out += [
            f"`python -X importtime -c 'import wsgi'` (each module's median of {imports.get('runs', 1)} runs; a wall "
            f"clock): {imports['total_ms']:,.0f} ms, {imports['modules']:,} modules "
            "(`wsgi`'s own time is `create_app()` less the imports it makes). Slowest by their own time:",
            "",
        ]
        out += _table(
            ["module", "self ms", "inclusive ms"],
            [[f"`{x['module']}`", _fmt(x["self_ms"]), _fmt(x["inclusive_ms"])] for x in imports["top_self"]],
        )
        out += ["By top-level package (own time summed):", ""]
        out += _table(
            ["package", "self ms"], [[f"`{x['package']}`", _fmt(x["self_ms"])] for x in imports["top_packages"]]
        )
        out += ["Hearth's modules by inclusive time (which of our imports pulls the weight in):", ""]
        out += _table(
            ["module", "self ms", "inclusive ms"],
            [
                [f"`{x['module']}`", _fmt(x["self_ms"]), _fmt(x["inclusive_ms"])]
                for x in imports["top_hearth_inclusive"]
            ],
        )
    return out


def render_markdown(report: dict) -> str:
    m = report["machine"]
    c = report["config"]
    r = report["results"]
    sizes = c.get("sizes") or [
        {"size": f"{c['gunicorn']['workers']}x{c['gunicorn']['threads']}", "connections": c["connections"]}
    ]
    sized = "; ".join(f"{s['size']} with {s['connections']} connections" for s in sizes)
    where = (
        f" (every scenario at {sizes[0]['size']}, where the targets are judged; page and JSON at each size)"
        if len(sizes) > 1
        else ""
    )
    out = [
        "# `make bench`: latest results",
        "",
        f"Run {report['started_at']}, {report['elapsed_s']:.0f} s"
        f"{' (--quick: smoke figures only)' if report['quick'] else ''}"
        f"{' (--ci: one short round, gross regressions only)' if report.get('ci') else ''}; "
        f"scenarios: {', '.join(report['scenarios'])}.",
        "",
        f"Machine: {m['cpus']} × {m['cpu_model']}; Python {m['python']}; PostgreSQL {m['postgresql']}; "
        f"Redis {m['redis']}; gunicorn {m['gunicorn']} gthread, workers × threads: {sized}{where}; "
        f"huey {m['huey']}; load: {c['load_tool']}"
        f"{' ' + m['wrk'] if m.get('wrk') and c['load_tool'] == 'wrk' else ''}, {c.get('rounds')} round(s) of "
        f"{c.get('duration_s')} s. "
        f"Load average {m['loadavg_1m_before']} before, {m['loadavg_1m_after']} after "
        "(shared machine: other jobs ran too).",
        "",
        "Full/bare targets are judged on CPU per request (bare CPU µs/req ÷ full, median of the rounds); "
        "req/s ratios are shown beside them.",
        "",
        "## Targets",
        "",
    ]
    out += _table(
        ["target", "bar", "measured", "met"],
        [[t["target"], t["bar"], t["shown"], _met(t["met"])] for t in report["targets"]],
    )
    for key, title in (("page", "Fortunes page"), ("json", "Hello-world JSON")):
        if key in r:
            s = r[key]
            size = f", gunicorn {s['size']}" if s.get("size") else ""
            out += [f"## {title}: full stack vs bare Flask (`{s['path']}`{size})", ""]
            out += _table([*LOAD_HEADER, "full/bare"], _comparison_rows(s))
    out += _sizing(r, sizes)
    if "pipeline" in r:
        out += _pipeline(r["pipeline"])
    if "list" in r or "cache" in r:
        out += ["## Users list: `GET /api/v1/users?per_page=50` (JWT) vs bare Flask, and the L2 cache", ""]
        lst, cache = r.get("list", {}), r.get("cache", {})
        rows = []
        serial = {**({"bare": lst["serial"]["bare"]} if lst else {}), **(cache.get("serial") or {})}
        if lst:
            serial.setdefault("hit", lst["serial"]["full"])
            rows.append(
                _load_row("bare Flask (same SQL, same JSON)", lst["bare"], [_fmt(serial["bare"]["p50_ms"], 2), "1.00×"])
            )
        hit = lst.get("full") or cache.get("hit")
        bare_rps = lst["bare"]["rps"] if lst else None
        for key, name, summary in (
            ("hit", "full stack, cache hit (default)", hit),
            ("miss", "full stack, CACHE_FORCE_MISS=true", cache.get("miss")),
            ("disabled", "full stack, CACHE_ENABLED=false", cache.get("disabled")),
        ):
            if summary:
                ratio = f"{summary['rps'] / bare_rps:.2f}×" if bare_rps else "–"
                rows.append(_load_row(name, summary, [_fmt(serial.get(key, {}).get("p50_ms"), 2), ratio]))
        out += _table([*LOAD_HEADER, "1-conn p50 ms", "req/s vs bare"], rows)
        if cache:
            out += [
                f"Cache: a hit is **{cache['speedup_latency']:.2f}×** faster than a miss in one-connection latency "
                f"(p50), **{cache['speedup_cpu']:.2f}×** in server CPU per request, {cache['speedup_rps']:.2f}× in "
                f"req/s; disabled costs {cache['disabled_vs_miss_cpu']:.2f}× the CPU of a miss.",
                "",
            ]
        if lst:
            out += [
                "Fixed rate (open loop at a share of each app's own peak, bench/loadgen.py; latency runs from when "
                "each request was due, so a stall shows up in the tail):",
                "",
            ]
            frows = []
            for name, runs in lst["fixed_rate"].items():
                for f in runs:
                    frows.append(
                        [
                            "full stack (hit)" if name == "full" else "bare Flask",
                            f"{f['share']:.0%}",
                            _fmt(f["target_rps"], 0),
                            _fmt(f["achieved_rps"], 0),
                            _fmt(f["p50_ms"], 2),
                            _fmt(f["p90_ms"], 2),
                            _fmt(f["p99_ms"], 2),
                            _fmt(f["max_ms"], 1),
                            _fmt(f["cpu_us_per_request"], 0),
                            _fmt(f["errors"]),
                            _fmt(f["loadgen_cpu_s"], 1),
                        ]
                    )
            out += _table(
                [
                    "app",
                    "share of peak",
                    "target req/s",
                    "achieved",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "max ms",
                    "CPU µs/req",
                    "errors",
                    "loadgen CPU s",
                ],
                frows,
            )
    if "profile" in r:
        p = r["profile"]
        out += ["## Profile of the list (py-spy --gil: Python running in the master and every worker)", ""]
        if isinstance(p.get("py_spy"), str):
            out += [f"py-spy: {p['py_spy']}", ""]
        for key in ("hit", "miss"):
            prof = p.get(key)
            if not prof:
                continue
            if "error" in prof:
                out += [f"{key}: py-spy failed: `{prof['error'][-200:]}`", ""]
                continue
            out += [f"### Cache {key}: {prof['samples']} samples (`{prof['raw']}`)", ""]
            out += ["Hearth functions, inclusive (share of samples passing through them):", ""]
            out += _table(
                ["function (file)", "share"],
                [[f"`{x['name']}`", f"{x['share']:.1%}"] for x in prof["hearth_inclusive"][:12]],
            )
            out += ["Self time by package:", ""]
            out += _table(["package", "share"], [[x["name"], f"{x['share']:.1%}"] for x in prof["by_package"][:12]])
            out += ["Self time by function:", ""]
            out += _table(
                ["function (file)", "share"], [[f"`{x['name']}`", f"{x['share']:.1%}"] for x in prof["top_self"][:12]]
            )
        trips = p.get("round_trips")
        if trips:
            out += ["Round trips per list request (in-process, counted over 20 requests):", ""]
            out += _table(
                ["mode", "SQL statements", "Redis commands", "Redis detail"],
                [
                    [
                        mode,
                        _fmt(t["sql_per_request"]),
                        _fmt(t["redis_per_request"]),
                        ", ".join(f"{k} {v:g}" for k, v in t["redis"].items()),
                    ]
                    for mode, t in trips.items()
                ],
            )
            sql = trips.get("hit", {}).get("sql", {})
            if sql:
                out += ["SQL per request on a cache hit:", ""]
                out += _table(
                    ["statement (start)", "per request"], [[f"`{text}`", f"{n:g}"] for text, n in sql.items()]
                )
    if "login" in r:
        lg = r["login"]
        a = lg["argon2"]
        p = a["parameters"]
        out += [
            "## Login: `POST /api/v1/auth/token` against the argon2 ceiling",
            "",
            f"One argon2id verify (t={p['time_cost']}, m={p['memory_kib'] // 1024} MiB, p={p['parallelism']}), "
            f"in-process, called from one thread, median of {a['samples']}: {a['verify_wall_ms']} ms wall, "
            f"{a['verify_cpu_ms']} ms CPU "
            f"(its {p['parallelism']} lanes run on {p['parallelism']} threads). "
            f"Ceiling = {a['cores']} cores ÷ CPU per verify = **{a['ceiling_per_s']}/s** "
            f"({a['cores']} cores ÷ wall time: {a['ceiling_wall_per_s']}/s; that formula counts cores twice whenever "
            "the lane threads find free cores and the wall time drops below the CPU time).",
            "",
        ]
        rows = []
        for name, s in (("storm alone", lg["storm"]), ("storm + list (CPU includes the list)", lg["storm_with_list"])):
            rows.append(
                [
                    name,
                    _fmt(s["logins_per_s"], 2),
                    f"{s['logins_per_s'] / a['ceiling_per_s']:.2f}×",
                    _fmt(s["p50_ms"], 0),
                    _fmt(s["p99_ms"], 0),
                    _fmt(s["server_cpu_ms_per_login"], 0),
                    f"{a['verify_cpu_ms'] / s['server_cpu_ms_per_login']:.0%}" if s["server_cpu_ms_per_login"] else "–",
                    ", ".join(f"{k}: {v}" for k, v in s["statuses"].items()),
                ]
            )
        out += _table(
            [
                f"run ({lg['storm_connections']} connections)",
                "logins/s",
                "vs ceiling",
                "p50 ms",
                "p99 ms",
                "server CPU ms/login",
                "argon2 share of it",
                "statuses",
            ],
            rows,
        )
        out += [
            "`vs ceiling` depends on how much of the 2 cores the server got (the machine is shared); "
            "`argon2 share` (one verify's CPU ÷ the server's CPU per login) does not: it is the ratio the "
            "server would reach with both cores to itself.",
            "",
        ]
        if lg.get("by_clients"):
            out += [
                f"Every concurrency (the table above is the last, {lg['storm_connections']} clients; "
                f"best vs ceiling: {lg['best_ratio_ceiling']:.2f}×):",
                "",
            ]
            out += _table(
                [
                    "clients",
                    "logins/s",
                    "vs ceiling",
                    "login p99 ms",
                    "server CPU ms/login",
                    "list p50 ms",
                    "list p99 ms",
                    "list p99 vs alone",
                ],
                [
                    [
                        clients,
                        _fmt(e["storm"]["logins_per_s"], 2),
                        f"{e['ratio_ceiling']:.2f}×",
                        _fmt(e["storm"]["p99_ms"], 0),
                        _fmt(e["storm"]["server_cpu_ms_per_login"], 0),
                        _fmt(e["list_during_storm"]["p50_ms"], 2),
                        _fmt(e["list_during_storm"]["p99_ms"], 2),
                        f"{e['p99_ratio']:.2f}×" if e["p99_ratio"] is not None else "–",
                    ]
                    for clients, e in lg["by_clients"].items()
                ],
            )
        out += [f"The users list at a fixed {lg['list_rate']:.0f} req/s on the same server:", ""]
        out += _table(
            ["", "achieved req/s", "p50 ms", "p99 ms", "max ms", "errors"],
            [
                [
                    name,
                    _fmt(f["achieved_rps"], 0),
                    _fmt(f["p50_ms"], 2),
                    _fmt(f["p99_ms"], 2),
                    _fmt(f["max_ms"], 1),
                    _fmt(f["errors"]),
                ]
                for name, f in (("alone", lg["list_alone"]), ("during the login storm", lg["list_during_storm"]))
            ],
        )
        out += [
            f"During the storms the `users` cache namespace was bumped {lg['users_namespace_bumps']} times "
            "(a sign-in writes `last_login_at`, which no longer invalidates the cached user-list pages).",
            "",
        ]
    if "queue" in r:
        q = r["queue"]
        out += [f"## Queue: huey on Redis vs raw LPUSH/BRPOP ({q['workers']} consumer threads, no-op job)", ""]
        rows = []
        for key, name in (
            ("huey", "huey, blocking BRPOP"),
            ("raw", "raw LPUSH/BRPOP"),
            ("huey_hearth", "huey, Hearth's `flask worker` polling"),
        ):
            if key in q:
                s = q[key]
                rows.append(
                    [
                        name,
                        _fmt(s["enqueue"]["us_per_enqueue"], 0),
                        _fmt(s["latency"]["p50_ms"], 2),
                        _fmt(s["latency"]["p99_ms"], 2),
                        _fmt(s["latency"]["max_ms"], 1),
                        _fmt(s["throughput"]["jobs_per_s"], 0),
                        _fmt(s["drain"]["jobs_per_s"], 0),
                    ]
                )
        first = q.get("huey") or q.get("raw")
        out += _table(
            [
                "backend",
                f"enqueue µs ({first['enqueue']['count']:,} calls)",
                f"p50 ms ({first['latency']['count']:,} jobs at {first['latency']['rate']:.0f}/s)",
                "p99 ms",
                "max ms",
                f"jobs/s ({first['throughput']['count']:,}, 1 producer)",
                "drain jobs/s (consumer alone)",
            ],
            rows,
        )
    if "startup" in r:
        out += _startup(r["startup"])
    if report.get("worker_restarts") and any(report["worker_restarts"].values()):
        out += [f"Worker restarts during the load (gunicorn max_requests): {report['worker_restarts']}", ""]
    return "\n".join(out)
