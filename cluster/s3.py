"""The cluster's S3: moto's server on loopback, in a process of its own that can go away and
come back with its buckets and objects intact.

`python -m cluster.s3 PORT` serves S3 on 127.0.0.1:PORT. SIGUSR1 closes the listening socket
(clients get "connection refused": S3 unreachable), SIGUSR2 opens it again on the same port;
the objects live in this process's memory, so they survive. SIGTERM/SIGINT exit. A fresh
`moto.server` process would forget every object, which a drill of "S3 unreachable for a while"
must not do.
"""

from __future__ import annotations

import signal
import sys
import threading

from moto.server import ThreadedMotoServer

LISTENING = "s3_listening"
CLOSED = "s3_closed"


def _say(event: str, port: int) -> None:
    """One line to the log (stdout, which the harness sends to logs/s3.log)."""
    sys.stdout.write(f"{event} {port}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = int(args[0])
    requests: list[str] = []
    wake = threading.Event()

    def ask(what: str) -> None:
        requests.append(what)
        wake.set()

    signal.signal(signal.SIGUSR1, lambda *_: ask("close"))
    signal.signal(signal.SIGUSR2, lambda *_: ask("open"))
    signal.signal(signal.SIGTERM, lambda *_: ask("exit"))
    signal.signal(signal.SIGINT, lambda *_: ask("exit"))

    server: ThreadedMotoServer | None = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _say(LISTENING, port)
    # Signal handlers only queue a request: stopping a werkzeug server from inside a handler
    # would deadlock on the serving thread it waits for.
    while True:
        # A timed wait: the kernel may deliver the signal to one of moto's request threads, and
        # CPython runs the handler in this thread only once it runs bytecode again; an untimed
        # wait would sleep through it.
        while not wake.wait(0.2):
            pass
        wake.clear()
        while requests:
            what = requests.pop(0)
            if what == "exit":
                if server is not None:
                    server.stop()
                return 0
            if what == "close" and server is not None:
                server.stop()  # werkzeug closes the listening socket as serve_forever returns
                server = None
                _say(CLOSED, port)
            elif what == "open" and server is None:
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
                server.start()
                _say(LISTENING, port)


if __name__ == "__main__":
    sys.exit(main())
