"""nginx adds no stickiness: consecutive requests of one client are answered by both instances,
which is why every other test here makes sure any instance can serve any request; and a browser
signed in through nginx stays signed in whichever instance answers (each request's
X-Request-ID is found in the request log of the instance that served it).

`/health/ready` names the process that answered (`instance`: host and pid); a gunicorn worker
is a child of its instance's master (`cluster.web_pid(i)`), so its parent tells the instance."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import requests

from tests.cluster.clients import TIMEOUT, Browser, poll

REQUESTS = 20


def _parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return None


def _instance_of(pid: int, masters: dict[int, int]) -> int | None:
    """The instance whose gunicorn master `pid` is, or descends from."""
    for _ in range(4):
        if pid in masters:
            return masters[pid]
        parent = _parent(pid)
        if parent is None or parent <= 1:
            return None
        pid = parent
    return None


def test_consecutive_requests_through_nginx_reach_both_instances(cluster):
    masters = {cluster.web_pid(i): i for i in range(len(cluster.instance_urls))}
    answered: Counter = Counter()
    with requests.Session() as session:  # one client, one kept-alive connection to nginx
        for _ in range(REQUESTS):
            ready = session.get(cluster.url + "/health/ready", timeout=TIMEOUT)
            assert ready.status_code == 200, ready.text[:300]
            answered[_instance_of(ready.json()["instance"]["pid"], masters)] += 1
    assert None not in answered, f"a pid that belongs to no instance answered: {answered}"
    assert set(answered) == set(masters.values()), answered


def _served_by(cluster, request_ids: set[str]) -> Counter:
    """How many of `request_ids` each web instance logged a `request` line for."""
    served: Counter = Counter()
    for i in range(len(cluster.instance_urls)):
        for line in cluster.log_path(f"web{i}").read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("event") == "request" and entry.get("request_id") in request_ids:
                served[i] += 1
    return served


def test_a_browser_signed_in_through_nginx_stays_signed_in_whichever_instance_answers(cluster, host, make_user):
    account = make_user()
    ada = Browser(host, [cluster.url])  # "instance 0" is nginx here
    assert ada.login(0, account.email).status_code == 302
    request_ids = set()
    for _ in range(REQUESTS):
        request_id = f"cluster-test-{uuid.uuid4().hex}"
        request_ids.add(request_id)
        page = ada.get(0, "/account/", headers={"X-Request-ID": request_id})
        assert page.status_code == 200 and f'value="{account.email}"' in page.text
    served = _poll_served(cluster, request_ids)
    assert set(served) == set(range(len(cluster.instance_urls))), served


def _poll_served(cluster, request_ids: set[str]) -> Counter:
    """The instances' request lines for `request_ids`, once all are written (or after 5 s)."""
    served: Counter = Counter()

    def complete() -> bool:
        nonlocal served
        served = _served_by(cluster, request_ids)
        return sum(served.values()) == len(request_ids)

    poll(complete, 5, interval=0.1)
    return served
