"""Which webhook URLs and addresses are allowed (app.webhooks.targets), without a network."""

from __future__ import annotations

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
