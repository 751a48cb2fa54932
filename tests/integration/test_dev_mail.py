"""The development mailbox at /dev/mail."""

from __future__ import annotations

from app.core.unit_of_work import unit_of_work
from app.mail import service as mail_service


def test_dev_mail_lists_and_shows_messages_sent_in_development(make_app, app, tmp_path, monkeypatch):
    dev_app = make_app(app_env="development", dev_mail_dir=str(tmp_path / "mail"))
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


def test_dev_mail_shows_the_html_part_with_clickable_links_and_the_text_too(make_app, app, tmp_path, monkeypatch):
    dev_app = make_app(app_env="development", dev_mail_dir=str(tmp_path / "mail"))
    link = "http://localhost:5000/auth/verify/abc-DEF_123"
    with dev_app.app_context(), unit_of_work():
        mail_service.queue_email("new@example.com", "verify_email", {"name": "<Ann & Bob>", "link": link})
    [stored] = (tmp_path / "mail").glob("*.eml")
    html = dev_app.test_client().get(f"/dev/mail/{stored.stem}").get_data(as_text=True)
    html_part = html.split('class="mail-html">', 1)[1].split('<section aria-labelledby="mail-text-title">', 1)[0]
    assert f'<a href="{link}">Confirm my email address</a>' in html_part
    assert f'<a href="{link}">{link}</a>' in html_part
    assert "Hello &lt;Ann &amp; Bob&gt;," in html_part  # variables escaped, in the email and on the page
    assert "style=" not in html_part and "<style" not in html_part and "<title" not in html_part
    text_part = html.split('<pre class="mail-body">', 1)[1].split("</pre>", 1)[0]
    assert link in text_part and "<a " not in text_part


def test_dev_mail_does_not_exist_outside_development(client):
    assert client.get("/dev/mail/").status_code == 404
