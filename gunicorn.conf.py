"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`.

gthread workers: (2 × cores) processes with a few threads each suits an I/O-bound app.
Configuration is validated in the master before any worker forks, so a bad value stops
startup with one message instead of a crash loop.
"""

import multiprocessing
import os
import tempfile

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '5000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
keepalive = 5
timeout = 30
graceful_timeout = 20
# Recycle workers now and then as a guard against slow leaks; high enough not to churn under load.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 100000))
max_requests_jitter = max_requests // 10
accesslog = None  # Hearth writes its own structured request line
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
preload_app = False

# prometheus_client aggregates every worker's samples through files in this directory.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hearth-metrics-")
else:
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    from app.config import load_settings

    load_settings()  # raises ConfigError (exit code != 0, one message) before forking


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
