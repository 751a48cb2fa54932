"""Sampling profiles of a bench server under load (py-spy), boiled down to hotspots.

`py-spy record --subprocesses --format raw` samples the gunicorn master and every worker
without instrumenting them (no code change, small overhead) and writes collapsed stacks.
`summarize` turns them into what a reader acts on:

* **by package**: self time (leaf frames) per library or Hearth package;
* **top self**: the functions the CPU is in;
* **Hearth inclusive**: each function under app/ or tasks/ with the share of samples that
  pass through it (a request's time in the auth guard, the cache, serialisation...).

`--gil` samples, in each process, only the thread holding the GIL: the Python code actually
running. Without it, threads waiting for PostgreSQL, Redis or a free core (2 cores, 16
threads per server) look busy and drown the profile in `Connection.wait` and `select`.
Shares are of those samples across the master and every worker; C code that releases the GIL
(libpq's network wait, argon2) is not counted.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*):(?P<line>\d+)\)$")


def py_spy() -> str | None:
    """The py-spy binary (installed with the dev extras), if any."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_recording(binary: str, pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen:
    command = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--gil",
        "--duration",
        str(int(seconds)),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--full-filenames",
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _place(path: str) -> tuple[str, str]:
    """(package, short path) of a source file."""
    if "/site-packages/" in path:
        short = path.split("/site-packages/", 1)[1]
        return short.split("/", 1)[0].removesuffix(".py"), short
    try:
        short = str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        short = None
    if short is not None:
        parts = short.split("/")
        package = "/".join(parts[:2]) if parts[0] in ("app", "tasks") and len(parts) > 2 else parts[0]
        return f"hearth:{package.removesuffix('.py')}", short
    match = re.search(r"/lib/python3\.\d+/(.*)$", path)
    if match:
        short = match.group(1)
        return f"stdlib:{short.split('/', 1)[0].removesuffix('.py')}", short
    return path, path


def summarize(raw: Path, top: int = 15) -> dict:
    """Hotspots of a py-spy raw (collapsed stacks) file."""
    total = 0
    by_package: collections.Counter = collections.Counter()
    self_time: collections.Counter = collections.Counter()
    hearth_inclusive: collections.Counter = collections.Counter()
    places: dict[str, tuple[str, str]] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for part in stack.split(";"):
            match = FRAME.match(part)
            if match is None:
                continue  # "process N:..." and thread labels
            path = match["file"]
            if path not in places:
                places[path] = _place(path)
            frames.append((match["func"], path))
        if not frames:
            continue
        total += count
        leaf_func, leaf_path = frames[-1]
        package, short = places[leaf_path]
        by_package[package] += count
        self_time[f"{leaf_func} ({short})"] += count
        seen = set()
        for func, path in frames:
            package, short = places[path]
            if package.startswith("hearth:app") or package.startswith("hearth:tasks"):
                key = f"{func} ({short})"
                if key not in seen:
                    seen.add(key)
                    hearth_inclusive[key] += count

    def shares(counter: collections.Counter) -> list[dict]:
        return [{"name": name, "samples": n, "share": round(n / total, 4)} for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "by_package": shares(by_package),
        "top_self": shares(self_time),
        "hearth_inclusive": shares(hearth_inclusive),
    }
