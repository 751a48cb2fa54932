"""Prometheus metrics at /metrics: request count and latency by endpoint and status, jobs by
queue and outcome. Served only to callers presenting METRICS_TOKEN as a bearer token; with
no token configured the endpoint does not exist.

Under gunicorn each worker is a process, so `PROMETHEUS_MULTIPROC_DIR` (set by
`gunicorn.conf.py`) makes prometheus_client aggregate every worker's samples.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

from flask import Flask, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from app.jobs.repository import JobRepository

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    """Per-process request instruments; one instance per app, kept in `app.extensions`."""

    def __init__(self) -> None:
        # A private registry per app: tests build many apps in one process. In multiprocess
        # mode the values go to PROMETHEUS_MULTIPROC_DIR files whichever registry holds them.
        self.registry = CollectorRegistry()
        kwargs = {"registry": self.registry}
        # One histogram: its _count series is the request count by endpoint and status.
        self.latency = Histogram(
            "hearth_http_request_duration_seconds",
            "HTTP request latency (its _count is the request count)",
            ["method", "endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        )
        self._children: dict[tuple[str, str, int], Histogram] = {}

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        key = (method, endpoint, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.latency.labels(method, endpoint, str(status))
        child.observe(seconds)


class JobsCollector:
    """Job counts by queue and status, read from the `jobs` table at scrape time so the
    figures cover every worker process and host, not just this one."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("hearth_jobs", "Jobs by queue and status", labels=["queue", "status"])
        with self.app.app_context():
            for queue, status, count in JobRepository().counts_by_queue_and_status():
                family.add_metric([queue, status], count)
        yield family


def _scrape_registry(app: Flask) -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_RegistryAdapter(app.extensions["hearth.metrics"].registry))
    registry.register(JobsCollector(app))
    return registry


class _RegistryAdapter:
    """Lets one registry be registered inside another (prometheus wants a `collect`)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterator:
        return self.registry.collect()


def metrics_view() -> Response:
    token = current_app.config["METRICS_TOKEN"]
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(supplied.encode(), token.encode()):
        abort(404)
    return Response(generate_latest(_scrape_registry(current_app)), mimetype=CONTENT_TYPE_LATEST)


def init_metrics(app: Flask) -> None:
    app.extensions["hearth.metrics"] = RequestMetrics()
    app.add_url_rule("/metrics", "metrics", metrics_view)
