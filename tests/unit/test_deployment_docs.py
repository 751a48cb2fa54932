"""docs/deployment.md shows what actually runs: the nginx configuration `make cluster` uses,
byte for byte, and systemd units that start the real commands with stop timeouts above the
graceful windows they wait for."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "docs" / "deployment.md"
NGINX_MARKER = "<!-- cluster/nginx.conf, verbatim -->"
WEB_UNIT_MARKER = "<!-- systemd: hearth-web.service"
WORKER_UNIT_MARKER = "<!-- systemd: hearth-worker@.service"


def fenced_block_after(document: str, marker: str, language: str) -> str:
    """The body of the first ```<language> block after `marker`, with its final newline."""
    at = document.find(marker)
    assert at != -1, f"marker {marker!r} is missing from docs/deployment.md"
    opening = f"\n```{language}\n"
    start = document.find(opening, at)
    assert start != -1, f"no ```{language} block after {marker!r}"
    start += len(opening)
    end = document.find("\n```\n", start)
    assert end != -1, f"the ```{language} block after {marker!r} is not closed"
    return document[start : end + 1]


def directives(unit: str) -> dict[str, str]:
    """`Key=value` lines of a unit file (comments and section headers left out)."""
    found = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found[key] = value
    return found


def seconds(setting: str, source: str) -> float:
    match = re.search(rf"^{setting} = (\d+)$", source, re.MULTILINE)
    assert match, f"{setting} not found"
    return float(match.group(1))


def test_the_nginx_block_is_cluster_nginx_conf_byte_for_byte():
    shown = fenced_block_after(DEPLOYMENT.read_text(), NGINX_MARKER, "nginx")
    actual = (ROOT / "cluster" / "nginx.conf").read_text()
    assert shown == actual, "docs/deployment.md's nginx block differs from cluster/nginx.conf: copy the file in"


def test_the_web_unit_runs_gunicorn_with_the_repository_config_and_outlasts_its_graceful_stop():
    unit = directives(fenced_block_after(DEPLOYMENT.read_text(), WEB_UNIT_MARKER, "ini"))
    command = unit["ExecStart"].split()
    assert command[0].endswith("/.venv/bin/gunicorn")
    assert command[1:3] == ["-c", "gunicorn.conf.py"]
    assert command[-1] == "wsgi:app"
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["KillSignal"] == "SIGTERM" and unit["KillMode"] == "mixed"
    graceful = seconds("graceful_timeout", (ROOT / "gunicorn.conf.py").read_text())
    assert float(unit["TimeoutStopSec"]) > graceful


def test_the_worker_unit_runs_one_queue_consumer_and_outlasts_its_shutdown_timeout():
    unit = directives(fenced_block_after(DEPLOYMENT.read_text(), WORKER_UNIT_MARKER, "ini"))
    command = unit["ExecStart"].split()
    assert command[0].endswith("/.venv/bin/flask")
    assert command[1:] == ["--app", "wsgi", "worker", "%i"]
    assert unit["KillSignal"] == "SIGTERM"
    shutdown = Settings.model_fields["jobs_shutdown_timeout_seconds"].default
    assert float(unit["TimeoutStopSec"]) > shutdown
