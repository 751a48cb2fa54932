"""Hearth as several processes on one machine: nginx, gunicorn instances, huey consumers,
PostgreSQL, Redis, S3 (moto) and an SMTP sink (`make cluster`, tests/cluster, drills/)."""

from cluster.harness import Cluster, ClusterConfig, ClusterError

__all__ = ["Cluster", "ClusterConfig", "ClusterError"]
