"""huey on Redis against a raw LPUSH/BRPOP loop: enqueue cost, enqueue→complete latency and
throughput of a no-op job, measured the same way for both.

Each backend has a producer (bench/run.py's process, `Producer`) and a consumer in its own
process (`python -m bench.queues consume ...`):

* huey: `RedisHuey(name, url=..., blocking=..., results=False)` (results off, as Hearth's
  queues), one no-op task, and a real consumer, `huey.create_consumer(workers=N,
  worker_type="thread", periodic=False, ...)`. Two consumer settings: **blocking** (BRPOP,
  huey's default, the best case) and **hearth** (the settings of `flask worker` in
  app/cli.py: non-blocking RPOP polled with initial_delay 0.05 s, backoff 1.5, max_delay 1 s).
* raw: the producer LPUSHes a small message; N consumer threads BRPOP it.

Figures: **enqueue** (µs per call, a loop with no consumer running), **drain** (N jobs queued
first, then the consumer started: the consumer's own capacity), **latency** (jobs enqueued at
a steady rate: enqueue→complete p50/p99), **throughput** (N jobs from one producer as fast as
it can while the consumer runs: first enqueue to last completion; bounded by the slower side).

The message (task arguments, or the raw message) carries the producer's `time.time()`. The
consumer records `time.time() - started` in memory as the job runs (no extra Redis call per
job, so neither backend pays for the measurement), and when the phase's last job has run it
pushes every latency and the completion time to Redis in one go for the producer to read.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
# app/cli.py's `flask worker` consumer settings (kept in step by hand: they are literals there).
HEARTH_POLLING = {"initial_delay": 0.05, "backoff": 1.5, "max_delay": 1.0}
BLOCKING_POLLING = {"initial_delay": 0.001, "backoff": 1.15, "max_delay": 0.01}
RAW_READ_TIMEOUT = 1


# Consumer side ---------------------------------------------------------------------------------


class Recorder:
    """Collects each phase's latencies in memory; reports a phase once its last job ran."""

    def __init__(self, client: redis.Redis, namespace: str):
        self.client = client
        self.namespace = namespace
        self.lock = threading.Lock()
        self.phases: dict[str, list[float]] = {}

    def record(self, phase: str, expected: int, started: float) -> None:
        now = time.time()
        with self.lock:
            latencies = self.phases.setdefault(phase, [])
            latencies.append(now - started)
            if len(latencies) < expected:
                return
            del self.phases[phase]
        self.client.rpush(done_key(self.namespace, phase), json.dumps({"latencies": latencies, "last": now}))


_recorder: Recorder | None = None


def _noop(phase: str, expected: int, started: float) -> None:
    """The no-op job: nothing but noting when it ran."""
    if _recorder is not None:
        _recorder.record(phase, expected, started)


def done_key(namespace: str, phase: str) -> str:
    return f"{namespace}:done:{phase}"


def raw_queue_key(namespace: str) -> str:
    return f"{namespace}:raw-queue"


def build_huey(namespace: str, url: str, blocking: bool):
    """The bench's huey and its no-op task (the same in producer and consumer)."""
    from huey import RedisHuey

    huey = RedisHuey(namespace, url=url, blocking=blocking, read_timeout=1, results=False)
    return huey, huey.task(name="bench_noop")(_noop)


def consume(backend: str, namespace: str, url: str, workers: int, polling: str) -> None:
    global _recorder
    client = redis.Redis.from_url(url)
    _recorder = Recorder(client, namespace)
    if backend == "huey":
        huey, _ = build_huey(namespace, url, blocking=polling == "blocking")
        settings = HEARTH_POLLING if polling == "hearth" else BLOCKING_POLLING
        consumer = huey.create_consumer(
            workers=workers, worker_type="thread", periodic=False, check_worker_health=True, **settings
        )
        client.set(f"{namespace}:ready", time.time())
        consumer.run()  # until SIGINT/SIGTERM
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    key = raw_queue_key(namespace)

    def loop() -> None:
        local = redis.Redis.from_url(url)
        while not stop.is_set():
            item = local.brpop([key], timeout=RAW_READ_TIMEOUT)
            if item is None:
                continue
            phase, expected, started = item[1].decode().split("|")
            _noop(phase, int(expected), float(started))

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    client.set(f"{namespace}:ready", time.time())
    while not stop.is_set():
        stop.wait(0.2)
    for thread in threads:
        thread.join(timeout=RAW_READ_TIMEOUT + 1)


# Producer side ---------------------------------------------------------------------------------


class Producer:
    """Enqueues no-op jobs to one backend, and starts and stops its consumer process."""

    def __init__(self, backend: str, namespace: str, url: str, workers: int, polling: str = "blocking"):
        self.backend, self.namespace, self.url = backend, namespace, url
        self.workers, self.polling = workers, polling
        self.client = redis.Redis.from_url(url)
        self.process: subprocess.Popen | None = None
        if backend == "huey":
            self.huey, self.task = build_huey(namespace, url, blocking=polling == "blocking")
            self.enqueue = self._enqueue_huey
        else:
            self.raw_key = raw_queue_key(namespace)
            self.enqueue = self._enqueue_raw
        self.phase_counter = 0

    def _enqueue_huey(self, phase: str, expected: int) -> None:
        self.task(phase, expected, time.time())

    def _enqueue_raw(self, phase: str, expected: int) -> None:
        self.client.lpush(self.raw_key, f"{phase}|{expected}|{time.time()!r}")

    def flush(self) -> None:
        if self.backend == "huey":
            self.huey.storage.flush_queue()
        else:
            self.client.delete(self.raw_key)

    def start_consumer(self, log_path: Path) -> float:
        """Start the consumer process; returns the time it reported ready."""
        self.client.delete(f"{self.namespace}:ready")
        command = [
            sys.executable,
            "-m",
            "bench.queues",
            "consume",
            "--backend",
            self.backend,
            "--namespace",
            self.namespace,
            "--url",
            self.url,
            "--workers",
            str(self.workers),
            "--polling",
            self.polling,
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while (ready := self.client.get(f"{self.namespace}:ready")) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {self.backend} consumer did not start (see {log_path})")
            time.sleep(0.02)
        return float(ready)

    def stop_consumer(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # huey: graceful (finishes running tasks)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def _phase(self, label: str) -> str:
        self.phase_counter += 1
        return f"{label}{self.phase_counter}"

    def wait_done(self, phase: str, timeout: float) -> dict:
        # Short BLPOPs: redis-py's default socket timeout (5 s) would cut a longer one.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.client.blpop([done_key(self.namespace, phase)], timeout=2)
            if item is not None:
                return json.loads(item[1])
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"the {self.backend} consumer exited with {self.process.returncode}")
        raise SystemExit(f"{self.backend}: phase {phase} did not complete within {timeout:.0f}s")

    def enqueue_cost(self, count: int) -> dict:
        """µs per enqueue, in a loop, with no consumer running (the queue is flushed after)."""
        phase = self._phase("enq")
        self.flush()
        started = time.perf_counter()
        for _ in range(count):
            self.enqueue(phase, 0)
        elapsed = time.perf_counter() - started
        self.flush()
        return {"count": count, "us_per_enqueue": round(elapsed / count * 1e6, 1)}

    def queue_up(self, count: int) -> str:
        """Enqueue `count` jobs while no consumer runs (see `drained`)."""
        phase = self._phase("drain")
        for _ in range(count):
            self.enqueue(phase, count)
        return phase

    def drained(self, phase: str, count: int, ready_at: float) -> dict:
        """The consumer alone: from its start to the last of `count` queued jobs done."""
        done = self.wait_done(phase, 180)
        elapsed = done["last"] - ready_at
        return {"count": count, "seconds": round(elapsed, 3), "jobs_per_s": round(count / elapsed, 1)}

    def latency(self, count: int, rate: float) -> dict:
        """Enqueue→complete latency of `count` jobs enqueued at a steady `rate` per second."""
        phase = self._phase("lat")
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.enqueue(phase, count)
        done = self.wait_done(phase, 60)
        latencies = sorted(done["latencies"])
        return {
            "count": count,
            "rate": rate,
            "p50_ms": round(_percentile(latencies, 50) * 1000, 3),
            "p90_ms": round(_percentile(latencies, 90) * 1000, 3),
            "p99_ms": round(_percentile(latencies, 99) * 1000, 3),
            "max_ms": round(latencies[-1] * 1000, 3),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        }

    def throughput(self, count: int) -> dict:
        """`count` jobs enqueued as fast as one producer can: first enqueue to last completion."""
        phase = self._phase("tput")
        first = time.time()
        for _ in range(count):
            self.enqueue(phase, count)
        enqueued = time.time()
        done = self.wait_done(phase, 180)
        elapsed = done["last"] - first
        return {
            "count": count,
            "seconds": round(elapsed, 3),
            "jobs_per_s": round(count / elapsed, 1),
            "enqueue_seconds": round(enqueued - first, 3),
        }


def _percentile(sorted_values: list[float], pct: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(
    backend: str,
    namespace: str,
    url: str,
    *,
    workers: int,
    polling: str,
    enqueue_count: int,
    latency_count: int,
    latency_rate: float,
    throughput_count: int,
    log_path: Path,
) -> dict:
    """Every figure for one backend (and consumer setting); the consumer is stopped after."""
    producer = Producer(backend, namespace, url, workers, polling)
    result = {"backend": backend, "polling": polling, "workers": workers}
    result["enqueue"] = producer.enqueue_cost(enqueue_count)
    drain_phase = producer.queue_up(throughput_count)
    try:
        ready_at = producer.start_consumer(log_path)
        result["drain"] = producer.drained(drain_phase, throughput_count, ready_at)
        result["latency"] = producer.latency(latency_count, latency_rate)
        result["throughput"] = producer.throughput(throughput_count)
    finally:
        producer.stop_consumer()
        producer.flush()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="bench queue consumer (started by bench/run.py)")
    sub = parser.add_subparsers(dest="command", required=True)
    consumer = sub.add_parser("consume")
    consumer.add_argument("--backend", choices=("huey", "raw"), required=True)
    consumer.add_argument("--namespace", required=True)
    consumer.add_argument("--url", required=True)
    consumer.add_argument("--workers", type=int, default=4)
    consumer.add_argument("--polling", choices=("blocking", "hearth"), default="blocking")
    args = parser.parse_args()
    # Through the module's importable name, not __main__: huey names tasks after their module,
    # so the consumer must register `bench.queues.bench_noop` as the producer does.
    from bench import queues

    queues.consume(args.backend, args.namespace, args.url, args.workers, args.polling)


if __name__ == "__main__":
    main()
