"""Fallback load generator, used only when wrk is unavailable (not root, no sudo).

Closed loop like wrk: `connections` keep-alive HTTP/1.1 connections, each sending its next
request as soon as the previous answer is read, spread over `processes` processes so the
GIL of one does not cap the load. It costs far more CPU per request than wrk, and shares
the 2 cores with the servers, so absolute figures are lower than with wrk; the ratio
full/bare stays meaningful because both apps face the same generator.

    python bench/loadgen.py http://127.0.0.1:8001/api/bench/json --connections 32 --duration 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import threading
import time
from urllib.parse import urlsplit


def _connection_loop(host: str, port: int, path: str, deadline: float, out: dict) -> None:
    latencies: list[float] = []
    status_errors = read_errors = connect_errors = 0
    received = 0
    conn = None
    while True:
        start = time.perf_counter()
        if start >= deadline:
            break
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", path, headers={"Host": f"{host}:{port}"})
            response = conn.getresponse()
            body = response.read()
        except ConnectionRefusedError:
            connect_errors += 1
            conn = None
            time.sleep(0.01)
            continue
        except (OSError, http.client.HTTPException):
            read_errors += 1
            if conn is not None:
                conn.close()
            conn = None
            continue
        latencies.append(time.perf_counter() - start)
        received += len(body)
        if not 200 <= response.status < 400:
            status_errors += 1
        if response.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    out["latencies"] = latencies
    out["errors"] = (status_errors, read_errors, connect_errors)
    out["bytes"] = received


def _process_main(args: tuple[str, int, float, float]) -> dict:
    url, connections, start_at, duration = args
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    while time.time() < start_at:  # every process starts at the same instant
        time.sleep(0.001)
    deadline = time.perf_counter() + duration
    outs = [{} for _ in range(connections)]
    threads = [
        threading.Thread(target=_connection_loop, args=(parts.hostname, parts.port, path, deadline, out))
        for out in outs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies = [lat for out in outs for lat in out["latencies"]]
    errors = [sum(out["errors"][i] for out in outs) for i in range(3)]
    return {"latencies": latencies, "errors": errors, "bytes": sum(out["bytes"] for out in outs)}


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def run(url: str, connections: int = 32, duration: float = 10.0, processes: int = 2) -> dict:
    """Same keys as the wrk reporter (bench/report.lua): microseconds, counts."""
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit(f"refusing to load anything but loopback, not {host!r}")
    processes = max(1, min(processes, connections))
    shares = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    start_at = time.time() + 0.5
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_process_main, [(url, share, start_at, duration) for share in shares])
    latencies = sorted(lat for part in parts for lat in part["latencies"])
    status_errors, read_errors, connect_errors = (sum(p["errors"][i] for p in parts) for i in range(3))
    us = 1_000_000
    return {
        "requests": len(latencies),
        "duration_us": int(duration * us),
        "bytes": sum(p["bytes"] for p in parts),
        "p50_us": int(_percentile(latencies, 50) * us),
        "p90_us": int(_percentile(latencies, 90) * us),
        "p99_us": int(_percentile(latencies, 99) * us),
        "mean_us": (statistics.fmean(latencies) * us) if latencies else 0.0,
        "max_us": int(latencies[-1] * us) if latencies else 0,
        "connect_errors": connect_errors,
        "read_errors": read_errors,
        "write_errors": 0,
        "timeouts": 0,
        "status_errors": status_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(run(args.url, args.connections, args.duration, args.processes)))


if __name__ == "__main__":
    main()
