"""Notifications: `notify` joins the caller's unit of work (outbox), preferences are honoured
(security email can't be switched off), emails carry a one-click unsubscribe (RFC 8058), and
the features that cause notices send them."""

from __future__ import annotations

import re

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from app.core.database import utcnow
from app.core.unit_of_work import OutsideUnitOfWork, unit_of_work
from app.errors import ValidationFailed
from app.extensions import db
from app.jobs.models import Job
from app.jobs.queues import QUEUES_KEY
from app.notifications import service
from app.notifications.catalogue import KINDS
from app.notifications.models import Notification, NotificationPreference
from app.users.models import User
from tests.conftest import count_rows
from tests.support import PASSWORD, csrf_token

SEND_EMAIL = "tasks.emails.send_email"


@pytest.fixture()
def member(make_user):
    return make_user(email="member@example.com", display_name="Member", email_verified_at=utcnow())


def _notify(app, user_id, kind="export.ready", **options):
    options.setdefault("params", {"export_name": "Account data", "size": "2.0 MB"})
    with app.app_context(), unit_of_work() as session:
        row = service.notify(user_id, kind, **options)
        session.flush()
        return row.id if row is not None else None


def _rows(app, user_id=None) -> list[Notification]:
    with app.app_context():
        statement = select(Notification).order_by(Notification.id)
        if user_id is not None:
            statement = statement.where(Notification.user_id == user_id)
        rows = list(db.session.scalars(statement))
        db.session.expunge_all()
        return rows


def _email_jobs(app) -> list[Job]:
    with app.app_context():
        jobs = list(db.session.scalars(select(Job).where(Job.task == SEND_EMAIL).order_by(Job.created_at)))
        db.session.expunge_all()
        return jobs


def _recording_dispatcher(calls):
    def dispatch(job_id, task_name, delay):
        calls.append((job_id, task_name))

    return dispatch


# The outbox ------------------------------------------------------------------------------------


def test_notify_writes_the_row_and_queues_the_email_with_the_change(app, member, monkeypatch):
    calls = []
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", _recording_dispatcher(calls))
    with app.app_context(), unit_of_work() as session:
        session.add(User(email="caused@example.com", display_name="C", password_hash="x"))
        row = service.notify(member.id, "export.ready", params={"export_name": "Account data", "size": "2.0 MB"})
        session.flush()
        assert calls == []  # nothing is sent before the commit
        assert row.title == "Export ready: Account data"
    [job] = _email_jobs(app)
    assert calls == [(job.id, SEND_EMAIL)]
    assert job.payload["template"] == "notification" and job.payload["to"] == "member@example.com"
    assert count_rows(app, "notifications") == 1


def test_a_rolled_back_change_leaves_no_notification_and_sends_no_email(app, member, monkeypatch):
    calls = []
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", _recording_dispatcher(calls))
    with app.app_context():
        with pytest.raises(LookupError, match="refused"), unit_of_work() as session:  # noqa: PT012
            session.add(User(email="rolled@example.com", display_name="R", password_hash="x"))
            service.notify(member.id, "export.ready", params={"export_name": "X", "size": "1 B"})
            session.flush()
            raise LookupError("refused after notifying")
        with unit_of_work():
            pass  # a later unit's commit must not send the dropped email
    assert calls == []
    assert count_rows(app, "notifications") == 0 and count_rows(app, "jobs") == 0
    assert count_rows(app, "users") == 1  # only the member


def test_notify_outside_a_unit_of_work_is_refused(app, member):
    with app.app_context(), pytest.raises(OutsideUnitOfWork):
        service.notify(member.id, "export.ready", params={"export_name": "X", "size": "1 B"})
    assert count_rows(app, "notifications") == 0


def test_an_unknown_kind_is_a_programming_error(app, member):
    with app.app_context(), pytest.raises(LookupError, match="no notification kind"), unit_of_work():
        service.notify(member.id, "export.readyy")


# Preferences -----------------------------------------------------------------------------------


def test_defaults_come_from_the_catalogue(app, member):
    with app.app_context():
        chosen = service.preferences(member.id)
    assert list(chosen) == [kind.name for kind in KINDS]
    for kind in KINDS:
        assert (chosen[kind.name].in_app, chosen[kind.name].email) == (kind.in_app, kind.email or kind.security)
    assert chosen["upload.ready"].email is False and chosen["export.ready"].email is True


def test_in_app_off_writes_no_row_but_still_emails(app, member):
    with app.app_context():
        service.set_preferences(member, {"export.ready": service.ChannelChoice(in_app=False, email=True)})
    assert _notify(app, member.id) is None
    assert _rows(app) == [] and len(_email_jobs(app)) == 1


def test_email_off_writes_the_row_and_queues_nothing(app, member):
    with app.app_context():
        service.set_preferences(member, {"export.ready": service.ChannelChoice(in_app=True, email=False)})
    assert _notify(app, member.id) is not None
    assert _email_jobs(app) == []


def test_security_email_cannot_be_switched_off(app, member):
    with app.app_context():
        with pytest.raises(ValidationFailed) as refused:
            service.set_preferences(member, {"security.new_sign_in": service.ChannelChoice(in_app=False, email=False)})
        assert [error["field"] for error in refused.value.extra["errors"]] == ["security.new_sign_in.email"]
        assert db.session.scalars(select(NotificationPreference)).all() == []
        # Even a stored "off" (written around the service) is ignored when sending.
        db.session.add(
            NotificationPreference(user_id=member.id, kind="security.password_changed", in_app=True, email=False)
        )
        db.session.commit()
        assert service.preferences(member.id)["security.password_changed"].email is True
    _notify(app, member.id, "security.password_changed", params={})
    assert len(_email_jobs(app)) == 1


def test_unverified_addresses_get_security_notices_only(app, make_user):
    unverified = make_user(email="unverified@example.com")
    _notify(app, unverified.id, "export.ready")
    assert _email_jobs(app) == [] and len(_rows(app)) == 1
    _notify(app, unverified.id, "security.password_changed", params={})
    assert [job.args_summary["to"] for job in _email_jobs(app)] == ["unverified@example.com"]


def test_a_disabled_or_deleted_account_is_told_nothing(app, make_user):
    disabled = make_user(email="disabled@example.com", is_active_account=False, email_verified_at=utcnow())
    deleted = make_user(email="deleted@example.com", deleted_at=utcnow(), email_verified_at=utcnow())
    assert _notify(app, disabled.id, "security.password_changed", params={}) is None
    assert _notify(app, deleted.id, "export.ready") is None
    assert _rows(app) == [] and _email_jobs(app) == []


def test_an_unknown_kind_in_preferences_is_refused_by_name(app, member):
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        service.set_preferences(member, {"export.nope": service.ChannelChoice(in_app=True, email=True)})
    assert refused.value.extra["errors"][0]["field"] == "export.nope"


def test_two_saves_of_the_same_preference_at_once_both_succeed_and_the_later_wins(app, member, monkeypatch):
    """Two tabs saving at once: the second save arrives while the first is between looking for
    the user's row and writing it (a check-then-insert would fail the slower one with a
    duplicate key, a 500)."""
    import threading

    real_record = service.record
    other: dict[str, object] = {}

    def other_tab():
        try:
            with app.app_context():
                user = db.session.get(User, member.id)
                service.set_preferences(user, {"export.ready": service.ChannelChoice(in_app=False, email=False)})
            other["saved"] = True
        except Exception as error:  # reported to the test below
            other["error"] = error

    def first_save_meanwhile(event, **fields):
        if event == "notification_preferences_changed" and "thread" not in other:
            other["thread"] = thread = threading.Thread(target=other_tab)
            thread.start()
            thread.join(timeout=1)  # it finishes now, or waits for this save's lock
        return real_record(event, **fields)

    monkeypatch.setattr(service, "record", first_save_meanwhile)
    with app.app_context():
        user = db.session.get(User, member.id)
        service.set_preferences(user, {"export.ready": service.ChannelChoice(in_app=True, email=False)})
    other["thread"].join(timeout=30)
    assert other == {"thread": other["thread"], "saved": True}
    with app.app_context():
        rows = list(
            db.session.scalars(select(NotificationPreference).where(NotificationPreference.user_id == member.id))
        )
        assert [(row.kind, row.in_app, row.email) for row in rows] == [("export.ready", False, False)]


# The email ------------------------------------------------------------------------------------


@pytest.fixture()
def mail_app(make_app, smtp, app):
    return make_app(smtp_url=smtp.url, public_url="https://hearth.example")


def _part(message, content_type: str) -> str:
    [part] = [p for p in message.walk() if p.get_content_type() == content_type]
    return part.get_payload(decode=True).decode()


def test_the_email_carries_one_click_unsubscribe_headers_and_link(mail_app, smtp, member):
    _notify(mail_app, member.id, link="/exports")
    [delivery] = smtp.wait_for_deliveries(1)
    message = delivery.message
    assert message["Subject"] == "Export ready: Account data"
    assert re.fullmatch(r"<[0-9a-f-]{36}@[^>]+>", message["Message-ID"])  # the job's id, as for every email
    unsubscribe = re.fullmatch(
        r"<(https://hearth\.example/notifications/unsubscribe/[^>]+)>", message["List-Unsubscribe"]
    )
    assert unsubscribe, message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = _part(message, "text/plain")
    assert "Your export “Account data” (2.0 MB) is ready to download." in text
    assert "https://hearth.example/exports" in text  # the link, absolute (PUBLIC_URL)
    assert unsubscribe.group(1) in text and unsubscribe.group(1) in _part(message, "text/html")


def test_a_security_email_has_no_unsubscribe(mail_app, smtp, member):
    _notify(mail_app, member.id, "security.password_changed", params={})
    [delivery] = smtp.wait_for_deliveries(1)
    assert delivery.message["List-Unsubscribe"] is None and delivery.message["List-Unsubscribe-Post"] is None
    assert "/notifications/unsubscribe/" not in _part(delivery.message, "text/plain")
    assert "always sent by email" in _part(delivery.message, "text/plain")


def test_the_email_is_written_in_the_recipients_language(mail_app, smtp, make_user):
    german = make_user(email="de@example.com", locale="de", email_verified_at=utcnow())
    _notify(mail_app, german.id)
    [delivery] = smtp.wait_for_deliveries(1)
    assert '<html lang="de">' in _part(delivery.message, "text/html")


def test_render_message_refuses_headers_that_would_replace_its_own(app):
    from app.mail.service import render_message

    with app.app_context(), app.test_request_context():
        with pytest.raises(ValueError, match="cannot be set"):
            render_message("a@example.com", "test_message", {"address": "a"}, "k", headers={"Message-ID": "<x@y>"})
        with pytest.raises(ValueError, match="cannot be set"):
            render_message("a@example.com", "test_message", {"address": "a"}, "k", headers={"X-A": "b\r\nBcc: c"})


# One-click unsubscribe --------------------------------------------------------------------------


def _unsubscribe_path(app, user_id, kind="export.ready") -> str:
    with app.app_context():
        return service.unsubscribe_url(user_id, kind).removeprefix(app.extensions["hearth.settings"].public_base_url)


def _email_choice(app, user_id, kind="export.ready") -> bool:
    with app.app_context():
        return service.preferences(user_id)[kind].email


def test_one_click_post_unsubscribes_without_signing_in(app, client, member):
    path = _unsubscribe_path(app, member.id)
    response = client.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert _email_choice(app, member.id) is False
    assert _email_choice(app, member.id, "export.failed") is True  # only that kind
    with app.app_context():
        assert service.preferences(member.id)["export.ready"].in_app is True  # in-app unchanged


def test_opening_the_link_changes_nothing_until_the_button_is_pressed(app, client, member):
    path = _unsubscribe_path(app, member.id)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Stop these emails?" in html
    assert f'action="{path}"' in html and 'method="post"' in html
    assert _email_choice(app, member.id) is True  # a link scanner's GET unsubscribes nobody
    pressed = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert pressed.status_code == 200 and _email_choice(app, member.id) is False


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_or_foreign_token_is_refused_and_changes_nothing(app, client, member, method):
    path = _unsubscribe_path(app, member.id)
    token = path.rsplit("/", 1)[1]
    with app.app_context():
        secret = app.extensions["hearth.settings"].secret_key
    foreign = URLSafeSerializer(secret, salt="another-purpose").dumps([member.id, "export.ready"])
    security = URLSafeSerializer(secret, salt=service.UNSUBSCRIBE_SALT).dumps([member.id, "security.new_sign_in"])
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), foreign, security, "garbage"):
        response = getattr(client, method)(f"/notifications/unsubscribe/{bad}")
        assert response.status_code == 400, (bad, response.status_code)
        assert "This unsubscribe link is not valid" in response.get_data(as_text=True)
    assert _email_choice(app, member.id) is True
    assert _email_choice(app, member.id, "security.new_sign_in") is True
    assert count_rows(app, "notification_preferences") == 0


# Wiring into the features ----------------------------------------------------------------------

BROWSER_A = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BROWSER_B = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Safari/604.1"


def _sign_in(client, email, agent):
    client.environ_base["HTTP_USER_AGENT"] = agent
    token = csrf_token(client)
    return client.post("/auth/login", data={"csrf_token": token, "email": email, "password": PASSWORD})


def _kinds(app, user_id) -> list[str]:
    return [row.kind for row in _rows(app, user_id)]


def test_a_sign_in_from_a_new_device_notifies_but_not_the_first_or_a_known_one(app, make_user):
    user = make_user(email="traveller@example.com", email_verified_at=utcnow())
    first = app.test_client()
    assert _sign_in(first, user.email, BROWSER_A).status_code == 302
    assert _kinds(app, user.id) == []  # the very first sign-in: nothing to compare with
    again = app.test_client()
    assert _sign_in(again, user.email, BROWSER_A).status_code == 302
    assert _kinds(app, user.id) == []  # a browser already seen
    other = app.test_client()
    assert _sign_in(other, user.email, BROWSER_B).status_code == 302
    [row] = _rows(app, user.id)
    assert row.kind == "security.new_sign_in" and "Safari on iOS" in row.body and row.link == "/account/"
    assert [job.args_summary["template"] for job in _email_jobs(app)] == ["notification"]  # always emailed


def test_a_browser_or_client_that_only_updated_is_not_a_new_device(app, client, make_user, auth):
    user = make_user(email="updater@example.com")
    assert _sign_in(app.test_client(), user.email, BROWSER_A).status_code == 302
    updated = BROWSER_A.replace("128.0", "131.0")
    assert _sign_in(app.test_client(), user.email, updated).status_code == 302
    token = {"email": user.email, "password": PASSWORD}
    assert client.post("/api/v1/auth/token", json=token, headers={"User-Agent": "sync-tool/2.1"}).status_code == 200
    assert _kinds(app, user.id) == ["security.new_sign_in"]  # the tool, new; the Firefox update, not
    assert client.post("/api/v1/auth/token", json=token, headers={"User-Agent": "sync-tool/2.2.1"}).status_code == 200
    assert _kinds(app, user.id) == ["security.new_sign_in"]
    # The same browser on another system is another device.
    windows = BROWSER_A.replace("X11; Linux x86_64", "Windows NT 10.0; Win64; x64")
    assert _sign_in(app.test_client(), user.email, windows).status_code == 302
    assert _kinds(app, user.id) == ["security.new_sign_in", "security.new_sign_in"]


def test_records_without_a_user_agent_do_not_break_a_sign_in(app, make_user):
    from sqlalchemy import update

    from app.auth.models import UserSession

    user = make_user(email="legacy@example.com")
    assert _sign_in(app.test_client(), user.email, BROWSER_A).status_code == 302
    with app.app_context():  # a record from before User-Agents were kept
        db.session.execute(update(UserSession).where(UserSession.user_id == user.id).values(user_agent=None))
        db.session.commit()
    assert _sign_in(app.test_client(), user.email, BROWSER_B).status_code == 302
    assert _kinds(app, user.id) == ["security.new_sign_in"]


def test_an_api_sign_in_from_a_new_client_notifies(app, client, make_user, auth):
    user = make_user(email="apiuser@example.com")
    auth.login(user)  # the test client's own User-Agent
    response = client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": PASSWORD}, headers={"User-Agent": "sync-tool/2.1"}
    )
    assert response.status_code == 200
    assert _kinds(app, user.id) == ["security.new_sign_in"]
    again = client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": PASSWORD}, headers={"User-Agent": "sync-tool/2.1"}
    )
    assert again.status_code == 200 and _kinds(app, user.id) == ["security.new_sign_in"]


def test_changing_the_password_notifies_with_one_email(app, make_user, auth):
    user = make_user(email="changer@example.com", email_verified_at=utcnow())
    auth.login(user)
    response = auth.client.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(auth.client, "/account/"),
            "current_password": PASSWORD,
            "new_password": "a whole new passphrase 42",
        },
    )
    assert response.status_code == 302
    assert _kinds(app, user.id) == ["security.password_changed"]
    assert [(job.args_summary["to"], job.args_summary["template"]) for job in _email_jobs(app)] == [
        ("changer@example.com", "notification")
    ]


def test_resetting_the_password_notifies(app, make_user):
    from app.auth import accounts
    from app.auth.emailed_tokens import RESET_PASSWORD, issue_token

    user = make_user(email="resetter@example.com")
    with app.app_context():
        with unit_of_work():
            raw = issue_token(user.id, RESET_PASSWORD)
        accounts.reset_password(raw, "another fine passphrase 7")
    assert _kinds(app, user.id) == ["security.password_changed"]


def test_a_role_change_by_an_admin_notifies_the_user(app, client, people, target, api_auth):
    headers = api_auth.headers(people["admin"])
    response = client.patch(f"/api/v1/users/{target.id}", json={"roles": ["user", "viewer"]}, headers=headers)
    assert response.status_code == 200, response.json
    [row] = _rows(app, target.id)
    assert row.kind == "account.role_changed" and "user, viewer" in row.body
    # Other changes tell nobody.
    client.patch(f"/api/v1/users/{target.id}", json={"display_name": "Renamed"}, headers=headers)
    assert len(_rows(app, target.id)) == 1


def test_a_processed_upload_and_a_rejected_one_notify_their_owner(app, client, make_user, api_auth):
    from tests.integration.test_uploads import _upload, jpeg_with_exif

    owner = make_user(email="uploader@example.com")
    headers = api_auth.headers(owner)
    _upload_id, confirmed = _upload(client, headers, jpeg_with_exif((32, 32)), filename="holiday.jpg")
    assert confirmed.status_code == 200 and confirmed.json["status"] in ("uploaded", "ready")
    assert client.get(f"/api/v1/uploads/{_upload_id}", headers=headers).json["status"] == "ready"
    _, refused = _upload(client, headers, b"<html></html>", "image/png", "avatar", "cat.png")
    assert refused.json["status"] == "rejected"
    rows = _rows(app, owner.id)
    assert [(row.kind, row.title) for row in rows] == [
        ("upload.ready", "File ready: holiday.jpg"),
        ("upload.rejected", "File not accepted: cat.png"),
    ]
    assert rows[0].link == "/files/"
    assert "not image/png" in rows[1].body
    assert _email_jobs(app) == []  # upload notices are in-app only by default


def test_an_upload_whose_processing_fails_for_good_notifies_its_owner(app, client, make_user, api_auth, monkeypatch):
    from app.uploads import service as uploads
    from tests.integration.test_uploads import _upload, jpeg_with_exif

    owner = make_user(email="unlucky@example.com")
    _upload_id, _ = _upload(client, api_auth.headers(owner), jpeg_with_exif((32, 32)), filename="broken.jpg")
    with app.app_context():
        db.session.execute(db.update(uploads.Upload).values(status="processing"))
        db.session.commit()
        uploads.mark_failed(_upload_id, "The file could not be read as an image.")
    [*_, row] = _rows(app, owner.id)
    assert row.kind == "upload.rejected" and "Processing failed: The file could not be read as an image." in row.body


def test_api_tokens_of_another_account_never_see_its_notifications(app, client, member, make_user, api_auth):
    other = make_user(email="other@example.com")
    notification_id = _notify(app, member.id)
    response = client.post(f"/api/v1/notifications/{notification_id}/read", headers=api_auth.headers(other))
    assert response.status_code == 404
    assert _rows(app, member.id)[0].read_at is None
