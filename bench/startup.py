"""How long each of Hearth's processes takes from interpreter start to ready (bench "startup").

The processes are the Procfile's: the web process (`gunicorn ... wsgi:app`: each worker
imports `wsgi`, i.e. `create_app()`) and one huey consumer per queue (`flask --app wsgi worker
QUEUE`). Each is started fresh, as a deployment or a restarted worker would, with the bench's
environment (production profile, PostgreSQL, Redis) and timed with a wall clock from the spawn
to the moment it is ready:

* web: `import wsgi` done (the app is built; the script prints a marker; gunicorn's own
  start-up and fork are not included);
* consumer: its `worker_starting` log line, written just before `consumer.run()` (the log
  line is the last thing the `flask worker` command does before consuming), then it is stopped
  with SIGTERM.

Median of `repeats` (the first run may compile bytecode: "after install" means compiled). Then
`python -X importtime -c "import wsgi"` (each module's median over `repeats` runs) gives the
slowest imports of the web process, by their own time and inclusive, to show what could load
lazily.
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

READY_MARKER = "HEARTH_BENCH_READY"
WEB_SCRIPT = (
    "import time\n"
    "started = time.perf_counter()\n"
    "import app\n"
    "imported = time.perf_counter()\n"
    "import wsgi\n"
    "done = time.perf_counter()\n"
    f"print('{READY_MARKER}', round(imported - started, 3), round(done - imported, 3), flush=True)\n"
)
CONSUMER_READY = re.compile(r'"event"\s*:\s*"worker_starting"|worker_starting')
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| *(\S+)$")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_until(command: list[str], env: dict, workdir: Path, ready: re.Pattern, timeout: float) -> dict:
    """Spawn `command`; the seconds until it prints a line matching `ready`, that line, and
    the CPU seconds it used in all (start-up plus a short shutdown: steadier than the wall
    clock on a busy machine). A process still running once ready gets SIGTERM."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    seen: list[str] = []
    wall = None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = started + timeout
            while wall is None and time.perf_counter() < deadline:
                if not selector.select(timeout=max(0.0, deadline - time.perf_counter())):
                    break
                line = process.stdout.readline()
                if not line:
                    break
                seen.append(line)
                if ready.search(line):
                    wall = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: only it and its threads
                process.wait(timeout=5)
        process.stdout.close()
    if wall is None:
        raise SystemExit(f"{' '.join(command)} was not ready within {timeout:.0f} s:\n{''.join(seen)[-3000:]}")
    return {"wall_s": wall, "cpu_s": _children_cpu() - cpu_before, "line": seen[-1].strip()}


def _median_run(command: list[str], env: dict, workdir: Path, ready: re.Pattern, repeats: int) -> dict:
    runs = [_run_until(command, env, workdir, ready, timeout=60) for _ in range(repeats)]
    return {
        "ready_s": round(statistics.median(run["wall_s"] for run in runs), 3),
        "runs_s": [round(run["wall_s"], 3) for run in runs],
        "cpu_s": round(statistics.median(run["cpu_s"] for run in runs), 3),
        "line": runs[-1]["line"],
    }


def _import_profile(env: dict, workdir: Path) -> dict[str, tuple[float, float]]:
    """One `python -X importtime -c "import wsgi"`: module → (own ms, inclusive ms)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import wsgi"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"python -X importtime -c 'import wsgi' failed:\n{done.stderr[-3000:]}")
    profile = {}
    for line in done.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            own, inclusive, name = match.groups()
            profile[name] = (int(own) / 1000, int(inclusive) / 1000)
    return profile


def import_times(env: dict, workdir: Path, repeats: int = 3, top: int = 10) -> dict:
    """`-X importtime` of the web process: the slowest imports, by own and inclusive time.
    importtime reads a wall clock, so one run on a busy machine charges a descheduled moment to
    whatever module was loading: each module's figures are the median of `repeats` runs."""
    profiles = [_import_profile(env, workdir) for _ in range(repeats)]
    rows = [
        {
            "module": name,
            "self_ms": statistics.median(p[name][0] for p in profiles if name in p),
            "inclusive_ms": statistics.median(p[name][1] for p in profiles if name in p),
        }
        for name in profiles[0]
    ]
    total = next((row["inclusive_ms"] for row in rows if row["module"] == "wsgi"), None)
    packages: dict[str, float] = {}
    for row in rows:
        package = row["module"].split(".", 1)[0]
        packages[package] = packages.get(package, 0.0) + row["self_ms"]

    def shown(row: dict) -> dict:
        return {
            "module": row["module"],
            "self_ms": round(row["self_ms"], 1),
            "inclusive_ms": round(row["inclusive_ms"], 1),
        }

    # Hearth's own modules by inclusive time: which of our imports pulls the weight in.
    ours = [row for row in rows if row["module"].startswith(("app.", "tasks"))]
    return {
        "runs": repeats,
        "modules": len(rows),
        "total_ms": round(total, 1) if total is not None else None,
        "top_self": [shown(row) for row in sorted(rows, key=lambda row: -row["self_ms"])[:top]],
        "top_packages": [
            {"package": name, "self_ms": round(ms, 1)}
            for name, ms in sorted(packages.items(), key=lambda kv: -kv[1])[:top]
        ],
        "top_hearth_inclusive": [shown(row) for row in sorted(ours, key=lambda row: -row["inclusive_ms"])[:top]],
    }


def measure(env: dict, workdir: Path, queues: list[str], repeats: int = 3) -> dict:
    """Ready time of the web process and of each queue's consumer, and the web's import profile."""
    result: dict = {"repeats": repeats, "processes": {}}
    # Unbuffered: a log line must reach the pipe when it is written, not when a buffer fills.
    env = {**env, "PYTHONUNBUFFERED": "1"}
    web = _median_run([sys.executable, "-c", WEB_SCRIPT], env, workdir, re.compile(READY_MARKER), repeats)
    _, imports_s, create_s = web["line"].split()
    web["command"] = "python -c 'import wsgi' (what each gunicorn worker does)"
    web["import_app_s"], web["wsgi_s"] = float(imports_s), float(create_s)
    del web["line"]
    result["processes"]["web"] = web
    for queue in queues:
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", queue]
        consumer = _median_run(command, env, workdir, CONSUMER_READY, repeats)
        consumer["command"] = f"flask --app wsgi worker {queue}"
        del consumer["line"]
        result["processes"][f"worker {queue}"] = consumer
    result["importtime"] = import_times(env, workdir, repeats)
    return result
