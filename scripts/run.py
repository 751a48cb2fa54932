"""`make run`'s last step: the web server and the workers of Procfile.dev (through honcho), then,
once they are all up, where Hearth is and the admin's first-run sign-in in a box; Ctrl-C stops
everything and exits 0.

- **After the start-up logs.** honcho's output is relayed through this script, which prints
  the box once `/health/live` answers and every worker has logged `worker_starting` (or after
  START_TIMEOUT seconds), between two lines, so it is the last thing on the screen rather than
  buried under five processes' start-up lines.
- **Ctrl-C exits 0.** A terminal sends Ctrl-C to its whole foreground process group, `make`
  included, and make reports an interrupted recipe as a failure whatever the recipe returns.
  So, when it runs in a terminal's foreground, this script puts itself (and honcho) in a
  process group of its own and makes that the foreground group, as a shell does for a job:
  Ctrl-C then reaches only this script and honcho. honcho stops the processes (SIGTERM, then
  SIGKILL after 5 s), this script gives the terminal back to make's group and exits 0, and so
  does make. Ctrl-\\ and SIGTERM/SIGHUP stop everything the same way; Ctrl-Z is ignored (a
  suspended group make cannot see would leave the terminal stuck). Without a terminal (a
  test, a pipe) it is an ordinary child process: SIGINT/SIGTERM to it are passed to honcho.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from app.cli import credentials_box, read_admin_credentials

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
POLL_SECONDS = 0.25
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
WORKER_STARTED = b"worker_starting"


def _worker_count(procfile: Path) -> int:
    """Procfile processes that run `flask ... worker` (each logs `worker_starting` once)."""
    return sum(1 for line in procfile.read_text().splitlines() if re.search(r"\sworker\s", line))


class Terminal:
    """This process group as the terminal's foreground group while it runs (module docstring)."""

    def __init__(self) -> None:
        self.previous: int | None = None

    def take(self) -> None:
        try:
            if not os.isatty(0) or os.tcgetpgrp(0) != os.getpgrp():
                return  # no terminal, or not in its foreground (`make run &`): leave things be
            previous = os.getpgrp()
            ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not set it
            try:
                os.setpgid(0, 0)
                os.tcsetpgrp(0, os.getpgrp())
            finally:
                signal.signal(signal.SIGTTOU, ttou)
            self.previous = previous
        except OSError:
            return

    def give_back(self) -> None:
        if self.previous is None:
            return
        ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(0, self.previous)
        except OSError:
            pass  # make's group is gone: nothing to give back to
        finally:
            signal.signal(signal.SIGTTOU, ttou)
        self.previous = None

    @property
    def owned(self) -> bool:
        return self.previous is not None


class Relay(threading.Thread):
    """Copies honcho's output to ours, counting the workers that have started; prints
    `announce()`'s box between two lines when asked."""

    def __init__(self, source: int, workers: int) -> None:
        super().__init__(name="honcho-output", daemon=True)
        self.source, self.workers = source, workers
        self.started = 0
        self.all_started = threading.Event()
        self.lock = threading.Lock()
        self.at_line_start = True
        self.pending: str | None = None
        self.tail = b""

    def run(self) -> None:
        out = sys.stdout.buffer
        while True:
            try:
                chunk = os.read(self.source, 65536)
            except OSError:  # the pty's other side closed (EIO): honcho is gone
                break
            if not chunk:
                break
            with self.lock:
                out.write(chunk)
                self.at_line_start = chunk.endswith(b"\n")
                if self.pending and self.at_line_start:
                    out.write(self.pending.encode())
                    self.pending = None
                out.flush()
            lines = (self.tail + chunk).split(b"\n")
            self.tail = lines.pop()[-4096:]
            self.started += sum(WORKER_STARTED in line for line in lines)
            if self.started >= self.workers:
                self.all_started.set()

    def announce(self, text: str) -> None:
        """Print `text` now if the output is between lines, else right after the current line."""
        block = f"\n{text}\n\n"
        with self.lock:
            if self.at_line_start:
                sys.stdout.write(block)
                sys.stdout.flush()
            else:
                self.pending = block


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (our own http://127.0.0.1 URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_up(url: str, honcho: subprocess.Popen, relay: Relay, stopping: threading.Event) -> bool:
    """True once the web answers and every worker has started (or START_TIMEOUT passed)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and honcho.poll() is None and not stopping.is_set():
        if _answers(f"{url}/health/live"):
            relay.all_started.wait(max(0.0, deadline - time.monotonic()))
            return honcho.poll() is None and not stopping.is_set()
        time.sleep(POLL_SECONDS)
    return honcho.poll() is None and not stopping.is_set()


def _ignore_quit_and_stop() -> None:
    """In honcho, before it starts: Ctrl-\\ and Ctrl-Z reach its group too; this script decides
    what they mean (stop everything properly / nothing), so honcho ignores them."""
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.signal(signal.SIGTSTP, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--procfile", type=Path, default=ROOT / "Procfile.dev")
    parser.add_argument("--credentials", type=Path, default=Path("instance/admin-credentials.txt"))
    parser.add_argument("--honcho", default=str(Path(sys.executable).with_name("honcho")))
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}"

    terminal = Terminal()
    terminal.take()
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        first = not stopping.is_set()
        stopping.set()
        # From the terminal, honcho (in this group) got Ctrl-C itself; anything else is passed on.
        if first and honcho.poll() is None and not (terminal.owned and signum == signal.SIGINT):
            honcho.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    # honcho colours its prefixes only on a terminal: give it a pseudo-terminal when we have one.
    if sys.stdout.isatty():
        source, sink = pty.openpty()
    else:
        source, sink = os.pipe()
    try:
        honcho = subprocess.Popen(  # noqa: S603  (our own honcho, our own Procfile)
            [args.honcho, "start", "-f", str(args.procfile), "-p", str(args.port)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env={**os.environ, "PORT": str(args.port)},
            preexec_fn=_ignore_quit_and_stop,  # before the relay thread starts: no threads yet
        )
        os.close(sink)
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        relay = Relay(source, _worker_count(args.procfile))
        relay.start()
        if _wait_until_up(url, honcho, relay, stopping):
            credentials = read_admin_credentials(args.credentials)
            relay.announce(credentials_box(url, credentials, args.credentials, _answers(f"{url}/dev/mail/")))
        returncode = honcho.wait()
        relay.join(timeout=2)
    finally:
        terminal.give_back()
    if stopping.is_set():
        sys.stdout.write("Hearth stopped.\n")
        return 0
    return returncode


if __name__ == "__main__":
    sys.exit(main())
