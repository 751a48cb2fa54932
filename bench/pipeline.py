"""The request pipeline alone, in-process: where each microsecond of an empty request goes.

`bench/run.py --scenarios pipeline` runs this module in a fresh subprocess per app (the bench's
environment: production profile, PostgreSQL, Redis), once for the full stack
(`bench.fullstack_app`) and once for bare Flask (`bench.bare_app`):

    python -m bench.pipeline --app bench.fullstack_app:app --out result.json [--requests 2000]

It calls `app(environ, start_response)` directly, as gunicorn's worker would, for the empty
handler (`""`, 204) on an API path and on a browser path, and measures CPU time per request
with nothing in the way of the measurement (no sockets, no load generator, no neighbour's
scheduling: CPU time is what this process spent, whoever held the core in between).

Two kinds of pass alternate, `--rounds` of each, `--requests` requests per pass:

* plain: the app untouched; process CPU per request is the **total** (process CPU, not thread
  CPU, so work a pipeline hands to another thread, e.g. a log writer, still counts);
* instrumented: every hook the app has registered is wrapped in a thread-CPU timer, found
  generically so that a rewritten pipeline is measured without changing this file: Flask's
  `before_request` / `after_request` / `teardown_request` / `teardown_appcontext` hooks (of the
  app and of every blueprint), URL value preprocessors and defaults, template context
  processors, the session interface's `open_session` / `save_session`, the view, and each WSGI
  middleware layer wrapped around `app.wsgi_app` (its own share: inclusive minus the layer
  inside it); and Flask's own steps around them (`request_context`, the context's `push` and
  `pop`, `full_dispatch_request`), each less what is timed inside it.

Per hook and step: the median over instrumented passes of its CPU µs per request, less the
timer's own cost (calibrated on wrapped no-ops: what a timer records around nothing, and what
a timed call adds around it). The unattributed rest (the WSGI response's status, headers and
body iteration, signals, other threads) is each instrumented pass's total, less the timers'
cost, less everything attributed: taken within one pass, so drift between passes on a busy
machine does not leak into it. "Flask dispatch + rest" is Flask's steps plus that rest.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import inspect
import io
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.workload import API_EMPTY_PATH, EMPTY_PATH

PATHS = {"api": API_EMPTY_PATH, "browser": EMPTY_PATH}
# Flask's per-blueprint hook registries ({blueprint or None: [functions]}), and what to call them.
_SCOPED_REGISTRIES = (
    ("before_request_funcs", "before_request"),
    ("after_request_funcs", "after_request"),
    ("teardown_request_funcs", "teardown_request"),
    ("url_value_preprocessors", "url_value_preprocessor"),
    ("url_default_functions", "url_defaults"),
    ("template_context_processors", "context_processor"),
)
_MIDDLEWARE_INNER = ("app", "wsgi_app", "application")  # where WSGI middleware keeps the next layer
UNSEEN = "(unattributed)"
FLASK_CONTEXT = "flask: request_context"
FLASK_PUSH = "flask: ctx.push"
FLASK_DISPATCH = "flask: full_dispatch_request"
FLASK_POP = "flask: ctx.pop"
# What each of Flask's steps calls that is timed on its own (label prefixes or suffixes).
_INSIDE = {
    FLASK_CONTEXT: (),
    FLASK_PUSH: (".open_session",),
    FLASK_DISPATCH: (
        "before_request",
        "after_request",
        "url_value_preprocessor",
        "url_defaults",
        "context_processor",
        "view: ",
        ".save_session",
    ),
    FLASK_POP: ("teardown_request", "teardown_appcontext"),
}
FLASK_STEPS = {
    FLASK_CONTEXT: "Flask: Request object and URL adapter (`request_context`)",
    FLASK_PUSH: "Flask: context push: app context, URL match (less `open_session`)",
    FLASK_DISPATCH: "Flask: dispatch: hook loops, `make_response` (less hooks, view, `save_session`)",
    FLASK_POP: "Flask: context pop (less teardown hooks)",
}


def describe(function: Callable) -> str:
    """`module.qualname` of a hook (bound methods and partials included), for the table."""
    target = getattr(function, "func", function)  # functools.partial
    target = getattr(target, "__func__", target)  # bound method
    module = getattr(target, "__module__", None) or type(target).__module__
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{name}"


class Recorder:
    """Thread-CPU nanoseconds and calls per label, and the wrappers that fill them."""

    def __init__(self) -> None:
        self.ns: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def clear(self) -> None:
        self.ns.clear()
        self.calls.clear()

    def wrap(self, label: str, function: Callable, *, named: bool = True) -> Callable:
        clock, ns, calls = time.thread_time_ns, self.ns, self.calls

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                ns[label] += clock() - started
                calls[label] += 1

        # Name, module and attributes copied: hooks look views up by name (CSRF exemptions,
        # route limits) and read attributes set on them (e.g. `max_body_bytes`).
        return functools.update_wrapper(timed, function) if named else timed


class Instrumentation:
    """Wraps every hook of `app` in a `Recorder` timer, and puts the originals back."""

    def __init__(self, app: Any, recorder: Recorder):
        self.app, self.recorder = app, recorder
        self._undo: list[Callable[[], None]] = []
        self.middleware: list[str] = []  # labels of the WSGI layers, outermost first

    def install(self) -> None:
        app, wrap = self.app, self.recorder.wrap
        for attribute, kind in _SCOPED_REGISTRIES:
            for scope, functions in getattr(app, attribute).items():
                where = f" [{scope}]" if scope else ""
                self._replace_list(
                    functions, lambda f, kind=kind, where=where: wrap(f"{kind}{where}: {describe(f)}", f)
                )
        self._replace_list(app.teardown_appcontext_funcs, lambda f: wrap(f"teardown_appcontext: {describe(f)}", f))
        interface = app.session_interface
        for method in ("open_session", "save_session"):
            self._set(
                interface, method, wrap(f"session: {describe(getattr(interface, method))}", getattr(interface, method))
            )
        for endpoint, view in list(app.view_functions.items()):
            self._set_item(app.view_functions, endpoint, wrap(f"view: {endpoint}", view))
        self._wrap_middleware()
        self._wrap_flask()

    def _wrap_flask(self) -> None:
        """Flask's own steps around the hooks (methods it calls on the app and on the request
        context, so instance attributes intercept them), to split "Flask dispatch + rest"."""
        app, wrap = self.app, self.recorder.wrap
        self._set(app, "full_dispatch_request", wrap(FLASK_DISPATCH, app.full_dispatch_request))
        make_context = wrap(FLASK_CONTEXT, app.request_context)

        def request_context(environ: dict) -> Any:
            # Wrapping push and pop is outside every timer: it only exists in these passes.
            context = make_context(environ)
            context.push = wrap(FLASK_PUSH, context.push, named=False)
            context.pop = wrap(FLASK_POP, context.pop, named=False)
            return context

        self._set(app, "request_context", request_context)

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()
        self.middleware = []

    def _replace_list(self, functions: list, make: Callable[[Callable], Callable]) -> None:
        originals = list(functions)
        functions[:] = [make(f) for f in originals]
        self._undo.append(lambda: functions.__setitem__(slice(None), originals))

    def _set(self, owner: Any, attribute: str, value: Any) -> None:
        had_own = attribute in vars(owner)
        original = vars(owner).get(attribute)
        setattr(owner, attribute, value)
        self._undo.append(lambda: setattr(owner, attribute, original) if had_own else delattr(owner, attribute))

    def _set_item(self, mapping: dict, key: str, value: Any) -> None:
        original = mapping[key]
        mapping[key] = value
        self._undo.append(lambda: mapping.__setitem__(key, original))

    def _wrap_middleware(self) -> None:
        """Time each layer of `app.wsgi_app` (ProxyFix and the like), inclusive; down to
        Flask's own `wsgi_app`, whose inclusive time bounds the innermost layer's share."""
        owner, attribute = self.app, "wsgi_app"
        layer = getattr(owner, attribute)
        if _is_flask_wsgi(layer, self.app):
            return
        while True:
            label = "Flask.wsgi_app" if _is_flask_wsgi(layer, self.app) else f"wsgi: {describe(type(layer))}"
            self.middleware.append(label)
            self._set(owner, attribute, self.recorder.wrap(label, layer))
            if label == "Flask.wsgi_app":
                return
            inner = next((name for name in _MIDDLEWARE_INNER if callable(getattr(layer, name, None))), None)
            if inner is None:  # an opaque layer: its share includes everything inside it
                return
            owner, attribute, layer = layer, inner, getattr(layer, inner)


def _is_flask_wsgi(layer: Any, app: Any) -> bool:
    return inspect.ismethod(layer) and layer.__self__ is app and layer.__name__ == "wsgi_app"


def make_environ(path: str) -> dict:
    """What gunicorn hands the app for `GET path` from wrk (which sends only Host)."""
    path_info, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def requester(app: Any, path: str) -> tuple[Callable[[], None], list[str]]:
    """A function making one request (body iterated and closed, as a server does) and the
    statuses it saw."""
    statuses: list[str] = []
    template = make_environ(path)

    def start_response(status: str, _headers: list, _exc_info: Any = None) -> Callable:
        statuses.append(status)
        return lambda _data: None

    def one() -> None:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(b"")
        body = app(environ, start_response)
        try:
            for _chunk in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return one, statuses


def timer_costs(recorder: Recorder, samples: int = 20000) -> tuple[float, float]:
    """The timer's own cost, in ns: what a wrapper records around a function that does
    nothing (`bias`, taken off every timed call), and what a timed call adds to the timer
    around it beyond that (`nested`, taken off an enclosing step once per call inside it)."""
    noop = recorder.wrap("_noop", lambda: None)
    plain = recorder.wrap("_plain", lambda: None)
    nested = recorder.wrap("_nested", lambda: noop())
    for _ in range(samples):
        plain()
        nested()
    bias = recorder.ns["_plain"] / samples
    extra = (recorder.ns["_nested"] - recorder.ns["_plain"]) / samples
    recorder.clear()
    return bias, max(0.0, extra)


def _inside(step: str, label: str) -> bool:
    return any(label.startswith(mark) or label.endswith(mark) for mark in _INSIDE[step])


def attribute(recorder: Recorder, requests: int, bias: float, nested: float, middleware: list[str]) -> dict[str, float]:
    """One instrumented pass → µs per request by label: hooks (timer cost off), each WSGI
    layer's and each Flask step's own share (what is timed inside it taken off)."""
    corrected = {label: (ns - bias * recorder.calls[label]) / requests / 1000 for label, ns in recorder.ns.items()}
    shares = {
        label: value for label, value in corrected.items() if label not in FLASK_STEPS and label not in middleware
    }
    for step in FLASK_STEPS:
        if step in corrected:
            inner = [label for label in shares if _inside(step, label)]
            calls = sum(recorder.calls[label] for label in inner) / requests
            shares[step] = corrected[step] - sum(shares[label] for label in inner) - nested * calls / 1000
    for index, label in enumerate(middleware):
        if label == "Flask.wsgi_app":
            continue  # not a layer of its own: the layers around it own what it does not
        inner = corrected.get(middleware[index + 1], 0.0) if index + 1 < len(middleware) else 0.0
        shares[label] = corrected[label] - inner - (nested / 1000 if index + 1 < len(middleware) else 0.0)
    return shares


@contextmanager
def collected() -> Iterator[None]:
    """Start each pass from a collected heap, so a pass does not pay for the previous one's garbage."""
    gc.collect()
    yield


def measure_path(app: Any, path: str, requests: int, rounds: int, warmup: int) -> dict:
    """Plain and instrumented passes in turn (see the module's docstring); medians."""
    recorder = Recorder()
    instrumentation = Instrumentation(app, recorder)
    one, statuses = requester(app, path)
    for _ in range(warmup):
        one()
    bias, nested = timer_costs(recorder)
    totals: list[float] = []
    thread_totals: list[float] = []
    instrumented: list[float] = []
    passes: list[dict[str, float]] = []
    calls: dict[str, float] = {}
    for _ in range(rounds):
        with collected():
            cpu, thread = time.process_time_ns(), time.thread_time_ns()
            for _ in range(requests):
                one()
            totals.append((time.process_time_ns() - cpu) / requests / 1000)
            thread_totals.append((time.thread_time_ns() - thread) / requests / 1000)
        instrumentation.install()
        try:
            with collected():
                recorder.clear()
                cpu = time.process_time_ns()
                for _ in range(requests):
                    one()
                instrumented.append((time.process_time_ns() - cpu) / requests / 1000)
            middleware = list(instrumentation.middleware)
        finally:
            instrumentation.remove()
        shares = attribute(recorder, requests, bias, nested, middleware)
        # The pass's own total less what the timers themselves cost (each timed call adds
        # `nested` to it): what the shares must add up to. What they leave is "the rest", taken
        # within one pass so that drift between passes cannot make it negative.
        timed_calls = sum(recorder.calls.values()) / requests
        shares[UNSEEN] = instrumented[-1] - timed_calls * nested / 1000 - sum(shares.values())
        passes.append(shares)
        calls.update({label: count / requests for label, count in recorder.calls.items()})
    labels = {label for shares in passes for label in shares}
    # A hook seen in only some passes counts 0 in the others.
    median = {label: statistics.median(shares.get(label, 0.0) for shares in passes) for label in labels}
    total = statistics.median(totals)
    hooks = [
        {"name": label, "us": round(value, 1), "calls": round(calls.get(label, 1.0), 2)}
        for label, value in median.items()
        if label not in FLASK_STEPS and label != UNSEEN and not label.startswith("view: ")
    ]
    hooks.sort(key=lambda hook: -hook["us"])
    view_us = sum(value for label, value in median.items() if label.startswith("view: "))
    flask = [{"name": FLASK_STEPS[step], "us": round(median[step], 1)} for step in FLASK_STEPS if step in median]
    hooked = sum(hook["us"] for hook in hooks)
    flask_us = sum(step["us"] for step in flask)
    return {
        "path": path,
        "status": statuses[-1] if statuses else None,
        "requests": requests,
        "rounds": rounds,
        "cpu_us": round(total, 1),
        "cpu_us_rounds": [round(value, 1) for value in totals],
        "thread_cpu_us": round(statistics.median(thread_totals), 1),
        "instrumented_cpu_us": round(statistics.median(instrumented), 1),
        "timer_bias_ns": round(bias),
        "timer_nested_ns": round(nested),
        "hooks": hooks,
        "hooks_us": round(hooked, 1),
        "view_us": round(view_us, 1),
        "flask": flask,
        # What no timer sees (the WSGI response: status line, headers, body iteration;
        # signals; work on other threads), within the instrumented passes.
        "unattributed_us": round(median[UNSEEN], 1),
        # The breakdown's total (instrumented passes less the timers' cost) and "Flask
        # dispatch + rest": Flask's steps plus the unattributed rest.
        "attributed_total_us": round(hooked + view_us + flask_us + median[UNSEEN], 1),
        "rest_us": round(flask_us + median[UNSEEN], 1),
    }


def load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute or "app")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, metavar="MODULE:APP")
    parser.add_argument("--out", required=True, type=Path, help="where to write the JSON result")
    parser.add_argument("--requests", type=int, default=2000, help="requests per pass")
    parser.add_argument("--rounds", type=int, default=3, help="plain + instrumented passes")
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    started = time.perf_counter()
    app = load(args.app)
    result = {"app": args.app, "import_s": round(time.perf_counter() - started, 2), "paths": {}}
    for key, path in PATHS.items():
        result["paths"][key] = measure_path(app, path, args.requests, args.rounds, args.warmup)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def compare(full: dict, bare: dict) -> dict:
    """Per path: the full stack's breakdown, the bare app's, and the pipeline = full − bare."""
    paths = {}
    for key, full_path in full["paths"].items():
        bare_path = bare["paths"][key]
        paths[key] = {
            "path": full_path["path"],
            "full": full_path,
            "bare": bare_path,
            "pipeline_us": round(full_path["cpu_us"] - bare_path["cpu_us"], 1),
        }
    return paths


if __name__ == "__main__":
    main()
