"""The drills' results as markdown: one table row per drill, then each drill's expectations.

`render(run)` is pure (tests/drills pins it). `write_block(path, markdown)` replaces what lies
between BEGIN and END in `path` (docs/reliability.md: the lead writes the prose around it), or
appends a marked block when the file has none yet.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from drills.stats import Summary, format_counts, format_ms

BEGIN = "<!-- drills:begin -->"
END = "<!-- drills:end -->"


@dataclass
class Check:
    """One expectation of a drill, and what was measured against it."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class DrillResult:
    name: str
    title: str
    overall: Summary
    phases: dict[str, Summary] = field(default_factory=dict)
    kinds: dict[str, Summary] = field(default_factory=dict)
    jobs_enqueued: int = 0
    jobs_succeeded: int = 0
    jobs_failed: int = 0
    jobs_unfinished: int = 0
    reruns: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)  # "emails", "webhooks" → count
    recovery_s: float | None = None  # requests error-free again, after the fault ended
    jobs_recovery_s: float | None = None  # every job enqueued up to the fault's end finished
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass
class Machine:
    cores: int
    ram_gb: float
    os: str

    @classmethod
    def this(cls) -> Machine:
        try:
            pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pages = 0
        return cls(os.cpu_count() or 1, round(pages / 1024**3, 1), _os_name())


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


@dataclass
class Run:
    mode: str  # "full" or "short"
    started: datetime
    machine: Machine
    topology: str
    users: int
    results: list[DrillResult]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)


def _phase_latency(result: DrillResult) -> str:
    overall = result.overall
    text = f"{format_ms(overall.p50)} / {format_ms(overall.p95)} / {format_ms(overall.p99)}"
    during = [name for name, summary in result.phases.items() if name not in ("before", "after") and summary.requests]
    if during:
        parts = [f"{name} p95 {format_ms(result.phases[name].p95)}" for name in during]
        text += " (" + ", ".join(parts) + ")"
    return text


def _errors(summary: Summary) -> str:
    text = format_counts(summary.errors_by_status())
    if summary.shed:
        text += f" ({summary.shed:,} of them sign-ins shed: 503 + Retry-After)"
    if summary.rate_limited:
        text += f"; {summary.rate_limited:,} × 429"
    return text


def _duplicates(result: DrillResult) -> str:
    if not result.duplicates or not any(result.duplicates.values()):
        return "0"
    return ", ".join(f"{n} {what}" for what, n in result.duplicates.items() if n)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def _recovery(result: DrillResult) -> str:
    if result.recovery_s is None and result.jobs_recovery_s is None:
        return "–"
    return f"requests {_seconds(result.recovery_s)}, jobs {_seconds(result.jobs_recovery_s)}"


def _jobs(result: DrillResult) -> str:
    text = f"{result.jobs_enqueued:,} → {result.jobs_succeeded:,}"
    extra = []
    if result.jobs_failed:
        extra.append(f"{result.jobs_failed:,} failed")
    if result.jobs_unfinished:
        extra.append(f"**{result.jobs_unfinished:,} unfinished**")
    return text + (f" ({', '.join(extra)})" if extra else "")


def render(run: Run) -> str:
    """The markdown block: what ran where, the table, then each drill's expectations."""
    lines = [
        f"Run of {run.started.astimezone(UTC):%Y-%m-%d %H:%M} UTC, **{run.mode}** mode, "
        f"{run.seconds / 60:.1f} min; machine: {run.machine.cores} cores, {run.machine.ram_gb:g} GB RAM, "
        f"{run.machine.os}; {run.topology}; {run.users} virtual users. "
        f"Result: **{'all expectations met' if run.passed else 'EXPECTATIONS BROKEN'}**.",
        "",
        "| drill | requests | errors by status | p50 / p95 / p99 | jobs enqueued → completed | re-runs "
        "| duplicates | recovery | expectations |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in run.results:
        failed = sum(1 for c in result.checks if not c.passed)
        verdict = "pass" if result.passed else f"**FAIL** ({failed} of {len(result.checks)})"
        lines.append(
            f"| {result.title} | {result.overall.requests:,} | {_errors(result.overall)} | {_phase_latency(result)} "
            f"| {_jobs(result)} | {result.reruns:,} | {_duplicates(result)} | {_recovery(result)} | {verdict} |"
        )
    lines.append("")
    for result in run.results:
        lines.append(f"**{result.title}** ({result.seconds:.0f} s)")
        lines.append("")
        for check in result.checks:
            mark = "pass" if check.passed else "**FAIL**"
            lines.append(f"- {mark}: {check.name}" + (f" — {check.detail}" if check.detail else ""))
        for note in result.notes:
            lines.append(f"- note: {note}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def replace_block(document: str, block: str) -> str:
    """`document` with the text between BEGIN and END replaced by `block` (markers kept);
    a document without markers gets the marked block appended."""
    marked = f"{BEGIN}\n{block.rstrip()}\n{END}"
    start = document.find(BEGIN)
    end = document.find(END, start + len(BEGIN)) if start != -1 else -1
    if start == -1 or end == -1:
        separator = "" if not document or document.endswith("\n\n") else ("\n" if document.endswith("\n") else "\n\n")
        return f"{document}{separator}{marked}\n"
    return document[:start] + marked + document[end + len(END) :]


def write_block(path: Path, block: str) -> None:
    existing = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_block(existing, block))
