"""Which URLs a webhook may call, and the one HTTP request a delivery makes (SSRF guard).

Unless WEBHOOK_ALLOW_PRIVATE_TARGETS is on (by default only in development and test), a URL
must be `https://` and every address its host resolves to must be public: no loopback,
private, shared (CGNAT), link-local, multicast, reserved, unspecified or cloud-metadata
address, IPv4-mapped IPv6 included. It is checked when the endpoint is saved and again at
every attempt (DNS rebinding: the name may point elsewhere by then).

An attempt resolves the name once, checks every address, and connects to a checked address
itself: the request goes to that IP with the `Host` header and TLS SNI and certificate check
on the host name, so no second resolution (inside an HTTP library) can swap the address
after the check. Redirects are never followed (http.client does not), and at most
SNIPPET_BYTES of the answer's body are read.

One deadline, WEBHOOK_TIMEOUT after the attempt starts, bounds all of it: the name's
resolution (run on a helper thread the attempt waits for until the deadline: getaddrinfo
itself has no timeout), connecting (each address gets WEBHOOK_CONNECT_TIMEOUT or what is left,
at most MAX_ADDRESSES of them), TLS, sending and reading (a watchdog shuts the socket at the
deadline, whatever the receiver does).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import math
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import idna

from app.core.database import utcnow
from app.i18n import N_

SNIPPET_BYTES = 1024
USER_AGENT = "Hearth-Webhooks/1"
MAX_ADDRESSES = 3  # addresses of one name tried per attempt, each within the deadline

# What stays as it is in a URL's path and query when it is percent-encoded for the request
# line: RFC 3986's reserved characters and "%" (an escape already there is kept; a "%" that
# starts no escape is encoded below). Everything else (non-ASCII, spaces, quotes, …) is
# encoded as UTF-8.
PATH_SAFE = "/%:@!$&'()*+,;="
QUERY_SAFE = PATH_SAFE + "?"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Metadata services reachable from a cloud instance (AWS/GCP/Azure/OpenStack, AWS IPv6,
# ECS task metadata, Alibaba). Most are non-global anyway; listed so the rule never depends
# on that.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)

# Special-purpose ranges refused whatever this Python's `is_global` says of them (its tables
# changed between releases): "this network", shared (CGNAT), IETF protocol assignments,
# benchmarking and local-use NAT64. (NAT64's well-known prefix, 64:ff9b::/96, is not global
# for Python: refused too, even around a public IPv4 address.)
ALWAYS_INTERNAL = tuple(
    ipaddress.ip_network(network)
    for network in ("0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "64:ff9b:1::/48")
)

# Sentences stored with a delivery or shown for a refused URL, in English (translated where shown).
NEEDS_HTTPS = N_("The URL must start with https://.")
NEEDS_HTTP_OR_HTTPS = N_("The URL must start with https:// or http://.")
NO_HOST = N_("The URL must name a host, like https://hooks.example.com/hearth.")
HAS_CREDENTIALS = N_("The URL must not contain a user name or password.")
BAD_PORT = N_("The URL's port is not valid.")
BAD_HOST = N_("The URL's host name is not valid.")
CONTROL_CHARACTERS = N_("The URL must not contain control characters (a tab, a line break, …).")
UNRESOLVABLE = N_("The host name %(host)s could not be resolved.")
PRIVATE_ADDRESS = N_(
    "%(host)s resolves to an internal address (%(address)s): webhooks are only sent to public addresses."
)
CONNECT_FAILED = N_("Could not connect to the receiver (%(reason)s).")
TLS_FAILED = N_("The TLS connection to the receiver failed (%(reason)s).")
TIMED_OUT = N_("The receiver did not answer within %(seconds)s seconds.")
BROKEN_ANSWER = N_("The receiver closed the connection or sent an invalid answer (%(reason)s).")
UNSENDABLE = N_("The request could not be made from this URL (%(reason)s).")


class TargetRefused(Exception):
    """The URL may not be called (scheme, credentials, or an internal address): final."""

    def __init__(self, message: str):
        super().__init__(message)
        self.public_message = message


class TargetUnreachable(Exception):
    """No answer this time (resolution, connection, TLS, timeout, a broken answer): retried."""

    def __init__(self, message: str):
        super().__init__(message)
        self.public_message = message


@dataclass(frozen=True)
class Target:
    scheme: str  # "https" or "http"
    host: str  # ASCII (IDNA), without brackets
    port: int
    path: str  # path and query, what the request line carries

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    status: int
    snippet: str  # the first SNIPPET_BYTES of the body, decoded leniently
    retry_after: float | None  # seconds, from a Retry-After header (seconds or an HTTP date)
    duration_ms: float


def parse(url: str, *, allow_private: bool) -> Target:
    """The target of `url`, or TargetRefused naming what is wrong with it (nothing resolved).

    The host is IDNA-encoded (UTS #46, IDNA 2008); the path and query are percent-encoded, so
    the request line is ASCII whatever was typed. Control characters are refused (urlsplit
    would silently drop tabs and line breaks)."""
    url = url.strip()
    if _CONTROL.search(url):
        raise TargetRefused(CONTROL_CHARACTERS)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused(BAD_PORT) from None
    if port == 0:
        raise TargetRefused(BAD_PORT)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise TargetRefused(NEEDS_HTTP_OR_HTTPS if allow_private else NEEDS_HTTPS)
    if parts.username is not None or parts.password is not None:
        # They would show wherever the URL is shown (pages, audit rows, logs).
        raise TargetRefused(HAS_CREDENTIALS)
    if not parts.hostname:
        raise TargetRefused(NO_HOST)
    host = _ascii_host(parts.hostname)
    path = _escape(parts.path or "/", PATH_SAFE) + (f"?{_escape(parts.query, QUERY_SAFE)}" if parts.query else "")
    return Target(scheme, host, port if port is not None else (443 if scheme == "https" else 80), path)


def _ascii_host(hostname: str) -> str:
    """The host as the request carries it: an IP literal or an ASCII name as it is (lower
    case), a Unicode name IDNA-encoded by UTS #46 (not Python's "idna" codec, which is IDNA
    2003: it turns straße.de into strasse.de, another domain)."""
    if hostname.isascii():
        return hostname
    try:
        return idna.encode(hostname, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise TargetRefused(BAD_HOST) from None


def _escape(text: str, safe: str) -> str:
    return quote(_STRAY_PERCENT.sub("%25", text), safe=safe)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (TCP), in the resolver's order. Tests replace this
    function to play a resolver that changes its answer (DNS rebinding)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_internal(address: str) -> bool:
    """Whether a webhook must never be sent to this address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope ("fe80::1%eth0") is link-local anyway
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and is_internal(str(embedded)):
            return True
    return (
        ip in METADATA_ADDRESSES
        or any(ip in network for network in ALWAYS_INTERNAL if network.version == ip.version)
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)  # fec0::/10: "global" for Python
        or not ip.is_global
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _resolve_by(host: str, port: int, deadline: float | None) -> list[str]:
    """`resolve`, given until `deadline` (time.monotonic()) when there is one: it runs on a
    daemon thread the caller waits for, since getaddrinfo has no timeout of its own. A lookup
    still running at the deadline is left to finish (the system resolver's own timeouts end
    it) and its answer dropped. TimeoutError at the deadline."""
    if deadline is None:
        return resolve(host, port)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["addresses"] = resolve(host, port)
        except BaseException as error:  # handed to the waiting caller, which re-raises it
            outcome["error"] = error

    worker = threading.Thread(target=run, name="webhook-resolve", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise TimeoutError(f"resolving {host}")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["addresses"]  # type: ignore[return-value]


def checked_addresses(target: Target, *, allow_private: bool, deadline: float | None = None) -> list[str]:
    """Resolve the target's host once (before `deadline`, a time.monotonic(), if given) and
    check every address: TargetUnreachable when it does not resolve in time, TargetRefused
    when any address is internal (unless private targets are allowed)."""
    try:
        ipaddress.ip_address(target.host)
        addresses = [target.host]
    except ValueError:
        try:
            addresses = _resolve_by(target.host, target.port, deadline)
        except (OSError, UnicodeError):  # TimeoutError included
            raise TargetUnreachable(UNRESOLVABLE % {"host": target.host}) from None
    if not addresses:
        raise TargetUnreachable(UNRESOLVABLE % {"host": target.host})
    if not allow_private:
        for address in addresses:
            if is_internal(address):
                raise TargetRefused(PRIVATE_ADDRESS % {"host": target.host, "address": address})
    return addresses


def check_registration(url: str, *, allow_private: bool, timeout: float | None = None) -> Target:
    """Whether an endpoint may be saved with `url`: TargetRefused (with the sentence) if not.
    A name that does not resolve (within `timeout` seconds, if given) is refused too (most
    likely a typo)."""
    target = parse(url, allow_private=allow_private)
    if not allow_private:
        deadline = time.monotonic() + timeout if timeout is not None else None
        try:
            checked_addresses(target, allow_private=False, deadline=deadline)
        except TargetUnreachable as error:
            raise TargetRefused(error.public_message) from None
    return target


class _Watchdog:
    """Shuts the socket down at the deadline, so a receiver sending a byte at a time (each
    read within the socket timeout) is still cut at the total timeout."""

    def __init__(self, sock: socket.socket, seconds: float):
        self.fired = False
        self.sock = sock  # replaced by the TLS socket once wrapped (wrapping detaches this one)
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):  # already closed: nothing left to cut
            self.sock.shutdown(socket.SHUT_RDWR)


def tls_context() -> ssl.SSLContext:
    """The TLS settings of every https delivery: the system's trust store, the host name
    checked. Tests replace this function to trust a CA of their own."""
    return ssl.create_default_context()


def _connect(addresses: list[str], port: int, timeout: float, deadline: float) -> socket.socket:
    """A TCP connection to the first of (at most MAX_ADDRESSES) checked addresses that answers,
    each given `timeout` or what is left until `deadline`, whichever is shorter. TimeoutError
    when the deadline passes first."""
    last: OSError | None = None
    for address in addresses[:MAX_ADDRESSES]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt's deadline passed while connecting")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(min(timeout, left))
        try:
            sock.connect((address, port))
            return sock
        except OSError as error:
            sock.close()
            last = error
    assert last is not None
    raise last


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    connect_timeout: float,
    total_timeout: float,
) -> Answer:
    """POST `body` to the target, pinned to the address checked here (module docstring).

    TargetRefused for an internal address; TargetUnreachable for no answer (including the
    total timeout); an Answer (any HTTP status, redirects included, never followed) otherwise."""
    started = time.monotonic()
    deadline = started + total_timeout
    addresses = checked_addresses(target, allow_private=allow_private, deadline=deadline)
    try:
        sock = _connect(addresses, target.port, connect_timeout, deadline)
    except TimeoutError:
        seconds = total_timeout if time.monotonic() >= deadline - 0.01 else connect_timeout
        raise TargetUnreachable(TIMED_OUT % {"seconds": _seconds(seconds)}) from None
    except OSError as error:
        raise TargetUnreachable(CONNECT_FAILED % {"reason": _reason(error)}) from None
    with _Watchdog(sock, deadline - time.monotonic()) as watchdog:
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            connection: http.client.HTTPConnection
            if target.scheme == "https":
                context = tls_context()
                sock = watchdog.sock = context.wrap_socket(sock, server_hostname=target.host)
                connection = http.client.HTTPSConnection(target.host, target.port, context=context)
            else:
                connection = http.client.HTTPConnection(target.host, target.port)
            connection.sock = sock  # already connected to the checked address: no second lookup
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={
                    "Host": target.host_header,
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    **headers,
                },
            )
            response = connection.getresponse()
            raw = response.read(SNIPPET_BYTES)
            status = response.status
            # Retry-After means something only on a 429 or a 5xx (a retried answer).
            retry_after = (
                parse_retry_after(response.getheader("Retry-After")) if status == 429 or status >= 500 else None
            )
        except ssl.SSLError as error:
            if watchdog.fired:
                raise TargetUnreachable(TIMED_OUT % {"seconds": _seconds(total_timeout)}) from None
            raise TargetUnreachable(TLS_FAILED % {"reason": _tls_reason(error)}) from None
        except TimeoutError:
            raise TargetUnreachable(TIMED_OUT % {"seconds": _seconds(total_timeout)}) from None
        except (ValueError, UnicodeError, http.client.InvalidURL) as error:
            # A request http.client will not build from this target (parse() should have made
            # every URL sendable: a safety net). The same next time: final, not retried.
            if watchdog.fired:  # a read on the socket the watchdog cut
                raise TargetUnreachable(TIMED_OUT % {"seconds": _seconds(total_timeout)}) from None
            raise TargetRefused(UNSENDABLE % {"reason": _reason(error)}) from None
        except (OSError, http.client.HTTPException) as error:
            if watchdog.fired:
                raise TargetUnreachable(TIMED_OUT % {"seconds": _seconds(total_timeout)}) from None
            raise TargetUnreachable(BROKEN_ANSWER % {"reason": _reason(error)}) from None
        finally:
            sock.close()
    return Answer(
        status=status,
        snippet=raw.decode("utf-8", errors="replace"),
        retry_after=retry_after,
        duration_ms=round((time.monotonic() - started) * 1000, 2),
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        return max(0.0, (when - utcnow()).total_seconds())
    except (TypeError, ValueError, OverflowError):  # not a date, or one out of datetime's range
        return None


def _seconds(value: float) -> str:
    return f"{value:g}"


def _reason(error: BaseException) -> str:
    # The kind of failure only: an OS message may name local paths or addresses.
    return type(error).__name__


def _tls_reason(error: ssl.SSLError) -> str:
    return getattr(error, "verify_message", None) or getattr(error, "reason", None) or type(error).__name__
