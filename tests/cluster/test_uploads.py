"""An upload presigned on one instance, sent straight to S3 (the harness's moto server) and
confirmed on the other is processed exactly once: the confirmation claims the pending row
(a row lock in the shared database), so of two confirmations racing on both instances one
wins, and one processing job is enqueued, run once, and the upload ends `ready`."""

from __future__ import annotations

import io
import threading

import requests
from PIL import Image

from tests.cluster.clients import TIMEOUT, poll

PROCESS_UPLOAD = "tasks.uploads.process_upload"


def _png(size: tuple[int, int] = (48, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def _both_at_once(*calls):
    """Run each call in its own thread, released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index: int, call) -> None:
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT + 5)
    return results


def test_an_upload_presigned_on_one_instance_and_confirmed_on_both_is_processed_once(api, make_user, sql):
    account = make_user()
    client = api()
    token = client.tokens(0, account.email)["access_token"]
    data = _png()
    started = client.call(
        0,
        "POST",
        "/api/v1/uploads/presigned",
        token,
        json={"filename": "picture.png", "content_type": "image/png", "size": len(data), "kind": "avatar"},
    )
    assert started.status_code == 201, started.text[:300]
    upload_id, post = started.json()["upload_id"], started.json()["upload"]
    assert post["url"].startswith("http")  # S3, not the local-storage stand-in
    sent = requests.post(post["url"], data=post["fields"], files={"file": ("picture.png", data)}, timeout=TIMEOUT)
    assert sent.status_code in (200, 201, 204), (sent.status_code, sent.text[:300])

    def confirm(instance: int):
        return lambda: client.call(instance, "POST", f"/api/v1/uploads/{upload_id}/confirm", token)

    answers = _both_at_once(confirm(1), confirm(0))
    assert sorted(answer.status_code for answer in answers) == [200, 409], [a.text[:200] for a in answers]

    def ready() -> bool:
        shown = client.call(0, "GET", f"/api/v1/uploads/{upload_id}", token)
        assert shown.json()["status"] not in ("rejected", "failed"), shown.json()
        return shown.json()["status"] == "ready"

    assert poll(ready, 60, interval=0.2) is not None, "the upload was not processed within 60 s"
    assert client.call(1, "GET", f"/api/v1/uploads/{upload_id}", token).json()["status"] == "ready"
    # Confirming again, on either instance, is refused and enqueues nothing.
    assert client.call(0, "POST", f"/api/v1/uploads/{upload_id}/confirm", token).status_code == 409
    assert client.call(1, "POST", f"/api/v1/uploads/{upload_id}/confirm", token).status_code == 409

    jobs = sql(
        "SELECT status, attempts FROM jobs WHERE task = :task AND args_summary->>'upload_id' = :upload",
        task=PROCESS_UPLOAD,
        upload=upload_id,
    )
    assert [(job.status, job.attempts) for job in jobs] == [("succeeded", 1)]
