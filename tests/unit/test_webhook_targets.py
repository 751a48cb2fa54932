"""Which webhook URLs and addresses are allowed (app.webhooks.targets), without a network."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest

from app.core.database import utcnow
from app.webhooks import targets


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.1",
        "100.64.0.1",  # shared address space (CGNAT)
        "169.254.169.254",  # cloud metadata
        "169.254.10.10",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "239.255.255.250",
        "ff02::1",
        "240.0.0.1",
        "255.255.255.255",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "192.0.0.8",
        "198.18.0.1",
        "100.100.100.200",
        "64:ff9b::7f00:1",  # NAT64 around 127.0.0.1
    ],
)
def test_internal_addresses_are_refused(address):
    assert targets.is_internal(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert not targets.is_internal(address)


def test_production_urls_must_be_https():
    with pytest.raises(targets.TargetRefused, match="https://"):
        targets.parse("http://hooks.example.com/x", allow_private=False)
    assert targets.parse("http://hooks.example.com/x", allow_private=True).scheme == "http"
    with pytest.raises(targets.TargetRefused):
        targets.parse("ftp://hooks.example.com/x", allow_private=True)


def test_a_url_is_parsed_into_what_the_request_needs():
    target = targets.parse("https://Hooks.Example.com/in/hearth?token=1#frag", allow_private=False)
    assert (target.host, target.port, target.path) == ("hooks.example.com", 443, "/in/hearth?token=1")
    assert target.host_header == "hooks.example.com"
    assert targets.parse("https://hooks.example.com:8443", allow_private=False).host_header == "hooks.example.com:8443"
    assert targets.parse("https://hooks.example.com:8443", allow_private=False).path == "/"
    assert targets.parse("http://[::1]:8080/x", allow_private=True).host_header == "[::1]:8080"
    assert targets.parse("https://bücher.example/x", allow_private=False).host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "url", ["https://user:pw@hooks.example.com/", "https://user@hooks.example.com/", "https:///x", "https://h:99999/"]
)
def test_malformed_or_credentialed_urls_are_refused(url):
    with pytest.raises(targets.TargetRefused):
        targets.parse(url, allow_private=False)


def test_registration_checks_every_resolved_address(monkeypatch):
    monkeypatch.setattr(targets, "resolve", lambda host, port: ["93.184.215.14", "10.0.0.7"])
    with pytest.raises(targets.TargetRefused, match=r"10\.0\.0\.7"):
        targets.check_registration("https://mixed.example.com/", allow_private=False)
    monkeypatch.setattr(targets, "resolve", lambda host, port: ["93.184.215.14"])
    assert targets.check_registration("https://public.example.com/", allow_private=False).host == "public.example.com"


def test_registration_refuses_a_name_that_does_not_resolve(monkeypatch):
    def fail(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    monkeypatch.setattr(targets, "resolve", fail)
    with pytest.raises(targets.TargetRefused, match="could not be resolved"):
        targets.check_registration("https://typo.example.com/", allow_private=False)


def test_private_targets_allowed_resolve_nothing_at_registration(monkeypatch):
    def fail(host: str, port: int) -> list[str]:
        raise AssertionError("resolved")

    monkeypatch.setattr(targets, "resolve", fail)
    assert targets.check_registration("http://localhost:9000/x", allow_private=True).port == 9000


def test_retry_after_reads_seconds_and_http_dates():
    assert targets.parse_retry_after("120") == 120.0
    assert targets.parse_retry_after(None) is None
    assert targets.parse_retry_after("soon") is None
    later = targets.parse_retry_after(format_datetime(utcnow() + timedelta(minutes=5), usegmt=True))
    assert 290 <= later <= 301
    assert targets.parse_retry_after(format_datetime(utcnow() - timedelta(minutes=5), usegmt=True)) == 0.0


def test_site_local_ipv6_is_refused():
    # fec0::/10 (deprecated site-local) counts as global for Python's ipaddress.
    assert targets.is_internal("fec0::1")
    assert targets.is_internal("feff:ffff::1")


def test_unicode_host_names_are_encoded_by_uts46_not_idna_2003():
    # Python's "idna" codec (IDNA 2003) maps ß to ss: another domain.
    assert targets.parse("https://straße.de/x", allow_private=False).host == "xn--strae-oqa.de"
    assert targets.parse("https://Bücher.Example/x", allow_private=False).host == "xn--bcher-kva.example"
    # ASCII names are taken as they are (underscores included, which IDNA 2008 refuses).
    assert targets.parse("http://hooks_1.internal/x", allow_private=True).host == "hooks_1.internal"


@pytest.mark.parametrize("host", ["a\u200db.example", "\u0661\u0662a.example", "xn--a.example-.\u00e9"])
def test_host_names_idna_refuses_are_refused(host):
    with pytest.raises(targets.TargetRefused, match="host name is not valid"):
        targets.parse(f"https://{host}/x", allow_private=False)


def test_port_zero_is_refused_not_taken_as_the_default():
    with pytest.raises(targets.TargetRefused, match="port is not valid"):
        targets.parse("https://hooks.example.com:0/x", allow_private=False)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://h.example/café?name=zoë", "/caf%C3%A9?name=zo%C3%AB"),
        ("https://h.example/a b?q=x y", "/a%20b?q=x%20y"),
        ("https://h.example/in/%7Euser?a=%2F&b=c/d?e", "/in/%7Euser?a=%2F&b=c/d?e"),  # escapes and reserved kept
        ("https://h.example/100%?p=50%", "/100%25?p=50%25"),  # a "%" starting no escape
        ('https://h.example/x?q="<\'>"', "/x?q=%22%3C'%3E%22"),
    ],
)
def test_the_path_and_query_are_percent_encoded_for_the_request_line(url, path):
    target = targets.parse(url, allow_private=False)
    assert target.path == path and target.path.isascii()


@pytest.mark.parametrize("character", ["\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\u0085"])
def test_control_characters_are_refused(character):
    # urlsplit would silently drop a tab or a line break: refused before it sees them.
    with pytest.raises(targets.TargetRefused, match="control characters"):
        targets.parse(f"https://h.example/a{character}b", allow_private=False)


@pytest.mark.parametrize(
    "value",
    [
        "²",  # isdigit() but not a number float() reads
        "١٢٠",  # Arabic-Indic digits
        "9" * 400,  # a float, but infinite
        "Fri, 31 Dec 99999 23:59:59 GMT",  # a year datetime cannot hold (ValueError)
        "Fri, 31 Dec 99999999999999999999 23:59:59 GMT",  # OverflowError
        "Fri, 31 Dec 2027 23:59:59",  # no zone
    ],
)
def test_a_retry_after_that_is_not_a_delay_is_ignored(value):
    assert targets.parse_retry_after(value) is None


def test_a_lookup_past_the_deadline_gives_up_without_waiting_for_it(monkeypatch):
    release = threading.Event()

    def hanging(host: str, port: int) -> list[str]:
        release.wait(5)
        return ["93.184.215.14"]

    monkeypatch.setattr(targets, "resolve", hanging)
    target = targets.parse("https://slow.example.com/", allow_private=False)
    started = time.monotonic()
    with pytest.raises(targets.TargetUnreachable, match="could not be resolved"):
        targets.checked_addresses(target, allow_private=False, deadline=time.monotonic() + 0.2)
    assert time.monotonic() - started < 1
    release.set()
    # Within the deadline, the answer (or the resolver's error) comes through.
    assert targets.checked_addresses(target, allow_private=False, deadline=time.monotonic() + 1) == ["93.184.215.14"]
    monkeypatch.setattr(targets, "resolve", lambda host, port: (_ for _ in ()).throw(OSError("no such name")))
    with pytest.raises(targets.TargetUnreachable, match="could not be resolved"):
        targets.checked_addresses(target, allow_private=False, deadline=time.monotonic() + 1)
