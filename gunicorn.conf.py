"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`.

gthread workers: (2 × cores) processes with a few threads each suits an I/O-bound app.
Configuration is validated in the master before any worker forks, so a bad value stops
startup with one message instead of a crash loop.
"""

import multiprocessing
import os
import signal
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


def post_worker_init(worker):
    """At SIGTERM, stop listening at once rather than when the last request is done.

    gthread workers keep their copy of the listening socket open until they exit, so
    connections made during a graceful stop wait in a backlog nobody serves and are reset at
    the end: nginx retries a GET elsewhere, but a POST it already sent fails with 502. With the
    copies closed, new connections are refused and nginx retries them, whatever the method, on
    another instance (docs/deployment.md). Requests already accepted still finish. A reload
    (SIGHUP) is unaffected: the master and the new workers keep the socket open."""
    stop_gracefully = worker.handle_exit

    def close_listeners():
        worker.set_accept_enabled(False)
        for listener in worker.sockets:
            listener.close()

    def stop_listening_then_finish(signum, frame):
        if worker.alive:
            # Run by the worker's event loop, never inside the handler: the handler may land
            # between an accept() and the poller's use of the listener.
            worker.method_queue.defer(close_listeners)
        stop_gracefully(signum, frame)

    signal.signal(signal.SIGTERM, stop_listening_then_finish)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn sets it: never cut a request's I/O short
