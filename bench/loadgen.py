"""HTTP load generator for `make bench`: closed loop (like wrk) or fixed rate (like wrk2).

bench/run.py uses wrk for closed-loop peaks when it can (it costs far less CPU per request),
and this generator for what wrk cannot do:

* **fixed rate** (`rate=`): requests are due on a fixed schedule, whatever the server does, and
  each latency runs from the moment its request was *due*, not when it was sent. A stalled
  server therefore shows up in the percentiles (no coordinated omission), as with wrk2;
* **a body or client address that changes per request** (`RequestSpec.bodies`,
  `unique_client`): the login storm signs in as many users from many addresses;
* everything, when wrk is unavailable.

In a closed loop, a connection answered 429 or 503 with `Retry-After` waits that long before
its next request, as a well-behaved client does (a sign-in storm is told to come back when
the server's argon2 line is full).

Each process runs one `selectors` loop over raw keep-alive HTTP/1.1 sockets with the request
bytes built up front, so a request costs tens of microseconds of client CPU; the figures
report that CPU (`loadgen_cpu_s`), because it shares the machine with the servers.

    python bench/loadgen.py http://127.0.0.1:8001/api/bench/json --connections 32 --duration 10
    python bench/loadgen.py http://127.0.0.1:8001/api/v1/users?per_page=50 --rate 400 \\
        -H "Authorization: Bearer ..." --duration 10
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import multiprocessing
import selectors
import socket
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
REQUEST_TIMEOUT = 10.0  # seconds before an unanswered request counts as a timeout
DRAIN_SECONDS = 5.0  # after the run, how long in-flight requests may still finish


@dataclass(frozen=True)
class RequestSpec:
    """What to send. Static specs are encoded once; varying ones once per request."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    # Cycled, one per request (each process starts at a different offset); empty: no body.
    bodies: tuple[bytes, ...] = ()
    content_type: str = "application/json"
    # A distinct X-Forwarded-For per request, as if each came through a proxy from its own
    # client (the server must trust one proxy hop: TRUSTED_PROXIES=1).
    unique_client: bool = False


def _encode(spec: RequestSpec, host: str, port: int, path: str, body: bytes | None, client: str | None) -> bytes:
    lines = [f"{spec.method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in spec.headers]
    if client is not None:
        lines.append(f"X-Forwarded-For: {client}")
    if body is not None:
        lines += [f"Content-Type: {spec.content_type}", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class _Requests:
    """The next request's bytes: the same every time, or built per request."""

    def __init__(self, spec: RequestSpec, host: str, port: int, path: str, process_index: int, processes: int):
        self.spec, self.host, self.port, self.path = spec, host, port, path
        self.varies = bool(spec.bodies) or spec.unique_client
        self.fixed = None if self.varies else _encode(spec, host, port, path, None, None)
        self.process_index = process_index
        self.counter = 0
        self.body_index = (len(spec.bodies) * process_index // processes) if spec.bodies else 0

    def next(self) -> bytes:
        if self.fixed is not None:
            return self.fixed
        body = None
        if self.spec.bodies:
            body = self.spec.bodies[self.body_index % len(self.spec.bodies)]
            self.body_index += 1
        client = None
        if self.spec.unique_client:
            n = self.counter
            client = f"10.{self.process_index + 1}.{(n >> 8) & 255}.{n & 255}"
        self.counter += 1
        return _encode(self.spec, self.host, self.port, self.path, body, client)


class _Connection:
    __slots__ = (
        "buffer",
        "chunked",
        "close_after",
        "due",
        "expected",
        "header_end",
        "retry_after",
        "sent",
        "sock",
        "status",
    )

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.reset()

    def reset(self) -> None:
        self.buffer = bytearray()
        self.due = self.sent = 0.0
        self.expected = -1  # total bytes of the response once the headers are parsed
        self.status = 0
        self.close_after = False
        self.chunked = False
        self.header_end = -1
        self.retry_after = 0.0

    def response_complete(self) -> bool:
        """Parse as much of the response as has arrived; True once all of it has."""
        if self.header_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.header_end = end + 4
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            self.close_after = b"\nconnection: close" in head
            if self.status in (429, 503):
                self.retry_after = _retry_after(head)
            if b"\ntransfer-encoding: chunked" in head:
                self.chunked = True
            else:
                self.expected = self.header_end + _content_length(head)
        if self.chunked:  # no trailers: the last chunk ends the body
            body = self.buffer[self.header_end :]
            return body.endswith(b"\r\n0\r\n\r\n") or body == b"0\r\n\r\n"
        return len(self.buffer) >= self.expected


def _retry_after(head: bytes) -> float:
    """Retry-After in seconds (0 when absent or a date): what a well-behaved client waits."""
    at = head.find(b"\nretry-after:")
    if at < 0:
        return 0.0
    end = head.find(b"\r", at + 1)
    try:
        return float(head[at + 13 : end if end > 0 else None])
    except ValueError:
        return 0.0


def _content_length(head: bytes) -> int:
    at = head.find(b"\ncontent-length:")
    if at < 0:
        return 0
    end = head.find(b"\r", at + 1)
    return int(head[at + 16 : end if end > 0 else None])


def _process_main(job: dict) -> dict:
    """One process's share of the load: its connections, its share of the rate."""
    url, spec = job["url"], job["spec"]
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    requests = _Requests(spec, host, port, path, job["index"], job["processes"])
    rate = job["rate"]
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    late: collections.Counter = collections.Counter()
    errors = {"connect_errors": 0, "read_errors": 0, "write_errors": 0, "timeouts": 0}
    received = 0
    idle: list[_Connection] = []
    busy: set[_Connection] = set()

    def open_connection() -> _Connection | None:
        try:
            conn = _Connection(host, port)
        except OSError:
            errors["connect_errors"] += 1
            return None
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        return conn

    def drop(conn: _Connection) -> None:
        busy.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn.sock)
        conn.sock.close()

    def send(conn: _Connection, due: float) -> bool:
        conn.reset()
        conn.due = due
        conn.sent = time.perf_counter()
        try:
            conn.sock.sendall(requests.next())  # small requests: the kernel takes them at once
        except (BlockingIOError, OSError):
            errors["write_errors"] += 1
            drop(conn)
            return False
        busy.add(conn)
        return True

    while time.time() < job["start_at"]:  # every process starts at the same instant
        time.sleep(0.0005)
    start = time.perf_counter()
    deadline = start + job["duration"]
    if not rate:
        # Closed loop: every connection at once, each sending at once. At a fixed rate they are
        # opened on demand instead: gunicorn's gthread worker gives a new connection a thread
        # that waits for its first request, so connections opened and left unused would hold
        # the worker's threads (up to its keepalive) while requests on others queue behind.
        for _ in range(job["connections"]):
            conn = open_connection()
            if conn is not None:
                idle.append(conn)
    backlog: collections.deque[float] = collections.deque()
    resting: list[tuple[float, _Connection]] = []  # closed loop: connections told to retry later
    interval = 1.0 / rate if rate else 0.0
    next_due = start + (job["index"] / job["processes"]) * interval if rate else start
    if not rate:  # closed loop: every connection sends at once, then again on each answer
        for conn in list(idle):
            if send(conn, time.perf_counter()):
                idle.remove(conn)
    while True:
        now = time.perf_counter()
        if rate:
            while next_due <= now and next_due < deadline:
                backlog.append(next_due)
                next_due += interval
            while backlog and (idle or len(busy) < job["connections"]):
                conn = idle.pop() if idle else open_connection()
                if conn is None:
                    break
                if not send(conn, backlog.popleft()):
                    continue
        if resting:
            due_now = [item for item in resting if item[0] <= now]
            for item in due_now:
                resting.remove(item)
                if now < deadline:
                    send(item[1], now)
                else:
                    idle.append(item[1])
        if now >= deadline and not busy:
            break
        if now >= deadline + DRAIN_SECONDS:
            break
        timeout = 0.05
        if resting:
            timeout = max(0.0, min(timeout, min(item[0] for item in resting) - now))
        if rate and next_due < deadline:
            timeout = max(0.0, min(timeout, next_due - now))
        for key, _ in selector.select(timeout):
            conn: _Connection = key.data
            try:
                chunk = conn.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if conn in busy:
                    errors["read_errors"] += 1
                drop(conn)
                if now < deadline and not rate:  # closed loop: keep the connection count
                    replacement = open_connection()
                    if replacement is not None:
                        send(replacement, time.perf_counter())
                continue
            conn.buffer += chunk
            if conn not in busy or not conn.response_complete():
                continue
            done = time.perf_counter()
            if rate:  # every request that was due counts, however late it completes
                latencies.append(done - conn.due)
                statuses[conn.status] += 1
            elif done <= deadline:  # closed loop, like wrk: only what completed within the run
                latencies.append(done - conn.sent)
                statuses[conn.status] += 1
            else:  # closed loop, in flight at the deadline: the server still spent CPU on it
                late[conn.status] += 1
            received += len(conn.buffer)
            busy.discard(conn)
            if conn.close_after:
                drop(conn)
                conn = open_connection()
                if conn is None:
                    continue
            if done < deadline:
                if rate:
                    if backlog:
                        send(conn, backlog.popleft())
                    else:
                        idle.append(conn)
                elif conn.retry_after:  # closed loop: a 429/503 says when to come back
                    resting.append((done + conn.retry_after, conn))
                else:
                    send(conn, done)
            else:
                idle.append(conn)
        now = time.perf_counter()
        for conn in [c for c in busy if now - c.sent > REQUEST_TIMEOUT]:
            errors["timeouts"] += 1
            drop(conn)
    for conn in list(idle) + list(busy) + [item[1] for item in resting]:
        drop(conn)
    selector.close()
    return {
        "latencies": latencies,
        "statuses": dict(statuses),
        "late": dict(late),
        "errors": errors,
        "bytes": received,
        "unsent": len(backlog),
        "cpu_s": time.process_time(),
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 when empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def run(
    url: str,
    connections: int = 32,
    duration: float = 10.0,
    processes: int = 2,
    *,
    spec: RequestSpec | None = None,
    rate: float | None = None,
) -> dict:
    """Load `url` and return the keys of the wrk reporter (bench/report.lua, microseconds)
    plus `statuses`, `loadgen_cpu_s` and, at a fixed rate, `target_rps` and `unsent`."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"refusing to load anything but loopback, not {host!r}")
    spec = spec or RequestSpec()
    processes = max(1, min(processes, connections))
    shares = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    start_at = time.time() + 0.5
    jobs = [
        {
            "url": url,
            "spec": spec,
            "connections": share,
            "duration": duration,
            "rate": (rate / processes) if rate else None,
            "index": index,
            "processes": processes,
            "start_at": start_at,
        }
        for index, share in enumerate(shares)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_process_main, jobs)
    latencies = sorted(lat for part in parts for lat in part["latencies"])
    statuses: collections.Counter = collections.Counter()
    for part in parts:
        statuses.update({int(k): v for k, v in part["statuses"].items()})
    late: collections.Counter = collections.Counter()
    for part in parts:
        late.update({int(k): v for k, v in part["late"].items()})
    errors = {key: sum(part["errors"][key] for part in parts) for key in parts[0]["errors"]}
    us = 1_000_000
    result = {
        "requests": len(latencies),
        "duration_us": int(duration * us),
        "bytes": sum(p["bytes"] for p in parts),
        "p50_us": int(percentile(latencies, 50) * us),
        "p90_us": int(percentile(latencies, 90) * us),
        "p99_us": int(percentile(latencies, 99) * us),
        "mean_us": (statistics.fmean(latencies) * us) if latencies else 0.0,
        "max_us": int(latencies[-1] * us) if latencies else 0,
        **errors,
        "status_errors": sum(count for status, count in statuses.items() if not 200 <= status < 400),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        # Closed loop: answers to requests still in flight at the deadline (not in the figures
        # above, as with wrk; the server's CPU for them is in any CPU measured around the run).
        "late_statuses": {str(status): count for status, count in sorted(late.items())},
        "loadgen_cpu_s": round(sum(p["cpu_s"] for p in parts), 3),
    }
    if rate:
        result["target_rps"] = rate
        result["unsent"] = sum(p["unsent"] for p in parts)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate", type=float, default=None, help="fixed rate (requests/s); default closed loop")
    parser.add_argument("-H", "--header", action="append", default=[], help='"Name: value" (repeatable)')
    args = parser.parse_args()
    headers = tuple(tuple(part.strip() for part in header.split(":", 1)) for header in args.header)
    spec = RequestSpec(headers=headers)
    print(json.dumps(run(args.url, args.connections, args.duration, args.processes, spec=spec, rate=args.rate)))


if __name__ == "__main__":
    main()
