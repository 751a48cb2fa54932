"""The development mailbox at /dev/mail."""

from __future__ import annotations

from app.core.unit_of_work import unit_of_work
from app.mail import service as mail_service


def test_dev_mail_lists_and_shows_messages_sent_in_development(make_app, app, tmp_path, monkeypatch):
    monkeypatch.setattr(mail_service, "DEV_MAILBOX", tmp_path / "mail")
    monkeypatch.setattr("app.mail.routes.DEV_MAILBOX", tmp_path / "mail")
    dev_app = make_app(app_env="development")
    with dev_app.app_context(), unit_of_work():
        mail_service.queue_email("dev@example.com", "test_message", {"address": "dev@example.com"})
    client = dev_app.test_client()
    inbox = client.get("/dev/mail/")
    assert inbox.status_code == 200
    html = inbox.get_data(as_text=True)
    assert "dev@example.com" in html and "Hearth test message" in html
    [stored] = (tmp_path / "mail").glob("*.eml")
    message = client.get(f"/dev/mail/{stored.stem}")
    assert message.status_code == 200
    assert "sent to dev@example.com through the emails queue" in message.get_data(as_text=True)
    assert client.get("/dev/mail/..%2Fsecrets").status_code == 404


def test_dev_mail_does_not_exist_outside_development(client):
    assert client.get("/dev/mail/").status_code == 404
