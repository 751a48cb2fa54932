"""Account takeover paths closed (issue 10, findings 1, 3, 6 and 7): emailed links built from
PUBLIC_URL with foreign hosts refused, email changes that need the password and tell the old
address, emailed links that die with the account's security changes, a password form that
cannot be guessed against forever, and a lockout a stranger cannot turn against the owner.
Emails go through a real SMTP server on loopback (jobs run inline at commit)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.audit.models import AuditEvent
from app.auth.models import AccountToken, LoginFailures
from app.core.database import utcnow
from app.extensions import db
from app.users.models import User
from tests.support import PASSWORD, csrf_token


@pytest.fixture()
def mail_app(make_app, smtp, app):
    return make_app(smtp_url=smtp.url)


def _client(mail_app, ip="10.0.0.1"):
    client = mail_app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def _post(client, path, form_path=None, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, form_path or path), **data})


def _text(message) -> str:
    """The plain-text part of a delivered message (every email also has an HTML part)."""
    [part] = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    return part.get_payload(decode=True).decode()


def _links(delivery) -> list[str]:
    return re.findall(r"https?://\S+", _text(delivery.message))


def _path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def _user(app, user_id) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def _events(app, name) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(AuditEvent).where(AuditEvent.event == name))


# 1. Host header poisoning ------------------------------------------------------------------


def test_a_foreign_host_header_is_refused_before_any_email_is_sent(mail_app, smtp, make_user):
    make_user(email="victim@example.com")
    client = _client(mail_app)
    token = csrf_token(client, "/auth/reset")
    response = client.post(
        "/auth/reset", data={"csrf_token": token, "email": "victim@example.com"}, headers={"Host": "evil.example"}
    )
    assert response.status_code == 400
    assert smtp.deliveries == []
    api = client.get("/api/v1/status", headers={"Host": "evil.example"})
    assert api.status_code == 400 and api.mimetype == "application/problem+json"


def test_x_forwarded_host_behind_a_trusted_proxy_is_checked_too(make_app, smtp, make_user):
    make_user(email="victim@example.com")
    proxied = make_app(smtp_url=smtp.url, trusted_proxies=1).test_client()
    token = csrf_token(proxied, "/auth/reset")
    response = proxied.post(
        "/auth/reset",
        data={"csrf_token": token, "email": "victim@example.com"},
        headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "203.0.113.9"},
    )
    assert response.status_code == 400 and smtp.deliveries == []


def test_emailed_links_use_public_url_whatever_trusted_host_the_request_named(make_app, smtp, make_user):
    make_user(email="victim@example.com")
    app = make_app(
        smtp_url=smtp.url,
        public_url="https://hearth.example.com/app",
        trusted_hosts="hearth.example.com,.internal.example",
    )
    client = app.test_client()
    headers = {"Host": "node-3.internal.example"}
    html = client.get("/auth/reset", headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    response = client.post("/auth/reset", data={"csrf_token": token, "email": "victim@example.com"}, headers=headers)
    assert response.status_code == 200
    [delivery] = smtp.deliveries
    [link] = _links(delivery)
    assert link.startswith("https://hearth.example.com/app/auth/reset/")
    # localhost is no longer trusted once TRUSTED_HOSTS is explicit
    assert client.get("/auth/reset").status_code == 400


def test_health_probes_answer_whatever_the_host(client):
    assert client.get("/health/live", headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_public_url_is_required_and_https_outside_development():
    from app.config import ConfigError, load_settings

    production = {
        "_env_file": None,
        "app_env": "production",
        "database_url": "postgresql://db/hearth",
        "redis_url": "redis://cache:6379/0",
        "smtp_url": "smtp://mail:25",
        "secret_key": "s" * 40,
        "jwt_secret": "j" * 40,
    }
    with pytest.raises(ConfigError, match="PUBLIC_URL: required"):
        load_settings(production)
    with pytest.raises(ConfigError, match="PUBLIC_URL: must be an https"):
        load_settings({**production, "public_url": "http://hearth.example.com"})
    settings = load_settings({**production, "public_url": "https://hearth.example.com/"})
    assert settings.public_base_url == "https://hearth.example.com"
    assert settings.allowed_hosts == ["hearth.example.com"]


# 3. Email changes ---------------------------------------------------------------------------


def test_changing_the_email_in_the_browser_needs_the_current_password(mail_app, smtp, make_user, app, auth):
    user = make_user(email="me@example.com")
    browser = _client(mail_app)
    auth(browser).login("me@example.com")
    for password in ("", "not my password at all"):
        response = _post(
            browser,
            "/account/profile",
            "/account/",
            display_name="Me",
            email="new@example.com",
            current_password=password,
        )
        assert response.status_code == 422 and "current password" in response.get_data(as_text=True)
    assert smtp.deliveries == [] and _user(app, user.id).email == "me@example.com"
    # a display name alone needs no password
    assert (
        _post(browser, "/account/profile", "/account/", display_name="Renamed", email="me@example.com").status_code
        == 302
    )


def test_changing_the_email_over_the_api_needs_the_current_password(mail_app, smtp, make_user, app, api_auth):
    user = make_user(email="api@example.com")
    client = _client(mail_app)
    headers = api_auth(client).headers("api@example.com")
    missing = client.patch("/api/v1/me", json={"email": "thief@example.com"}, headers=headers)
    assert missing.status_code == 422
    assert missing.json["type"].endswith("/current-password-invalid")
    assert missing.json["errors"][0]["field"] == "current_password"
    wrong = client.patch(
        "/api/v1/me", json={"email": "thief@example.com", "current_password": "guess"}, headers=headers
    )
    assert wrong.status_code == 422 and smtp.deliveries == []
    with app.app_context():
        assert db.session.get(LoginFailures, (user.id, "10.0.0.1")).failures == 1  # counts toward the lockout
    ok = client.patch("/api/v1/me", json={"email": "new@example.com", "current_password": PASSWORD}, headers=headers)
    assert ok.status_code == 200 and ok.json["email"] == "api@example.com"  # not until confirmed
    assert sorted(d.recipients[0] for d in smtp.deliveries) == ["api@example.com", "new@example.com"]


def test_the_old_address_is_told_and_can_undo_the_change_and_secure_the_account(
    mail_app, smtp, make_user, app, api_auth
):
    user = make_user(email="owner@example.com")
    thief = _client(mail_app, "198.51.100.7")
    headers = api_auth(thief).headers("owner@example.com")
    thief.patch("/api/v1/me", json={"email": "thief@example.com", "current_password": PASSWORD}, headers=headers)
    by_recipient = {d.recipients[0]: d for d in smtp.deliveries}
    verify_link = _path(_links(by_recipient["thief@example.com"])[0])
    [undo_link] = _links(by_recipient["owner@example.com"])
    assert "thief@example.com" in _text(by_recipient["owner@example.com"].message)
    assert thief.get(verify_link).status_code == 302  # the thief confirms: the address moves
    assert _user(app, user.id).email == "thief@example.com"

    owner = _client(mail_app, "10.0.0.2")
    page = owner.get(_path(undo_link))
    assert page.status_code == 200 and "owner@example.com" in page.get_data(as_text=True)
    response = _post(owner, _path(undo_link))
    assert response.status_code == 302 and "/auth/reset/" in response.headers["Location"]
    restored = _user(app, user.id)
    assert restored.email == "owner@example.com" and restored.session_epoch > user.session_epoch
    assert thief.get("/api/v1/me", headers=headers).status_code == 401  # the thief's token is dead
    # the reset form the owner lands on works, and the undo link works only once
    reset_path = response.headers["Location"]
    done = _post(owner, reset_path, password="a brand new passphrase")
    assert done.status_code == 302
    assert owner.get(_path(undo_link)).status_code == 400
    assert _events(app, "email_change_undone") == 1


def test_an_old_verification_link_cannot_move_the_address_back(mail_app, smtp, make_user, app, auth):
    user = make_user(email="first@example.com")
    browser = _client(mail_app)
    auth(browser).login("first@example.com")
    _post(
        browser,
        "/account/profile",
        "/account/",
        display_name="A",
        email="second@example.com",
        current_password=PASSWORD,
    )
    first_change = next(d for d in smtp.deliveries if d.recipients == ["second@example.com"])
    _post(
        browser, "/account/profile", "/account/", display_name="A", email="third@example.com", current_password=PASSWORD
    )
    third = next(d for d in smtp.deliveries if d.recipients == ["third@example.com"])
    # a newer request ends the older one
    assert browser.get(_path(_links(first_change)[0])).status_code == 400
    assert browser.get(_path(_links(third)[0])).status_code == 302
    assert _user(app, user.id).email == "third@example.com"
    # a verification link from before the change no longer works either
    with app.app_context():
        live = db.session.scalars(
            db.select(AccountToken).where(AccountToken.user_id == user.id, AccountToken.used_at.is_(None))
        ).all()
        assert {token.purpose for token in live} == {"undo_email_change"}


@pytest.mark.parametrize("event", ["password_change", "sign_out_everywhere", "disable", "email_change"])
def test_pending_emailed_links_die_when_the_accounts_security_changes(event, mail_app, smtp, make_user, app, auth):
    user = make_user(email="links@example.com", roles=("user",))
    browser = _client(mail_app)
    auth(browser).login("links@example.com")
    _post(browser, "/auth/reset", email="links@example.com")
    _post(browser, "/auth/verify/resend", "/account/")
    reset_link = _path(_links(next(d for d in smtp.deliveries if "reset" in _links(d)[0]))[0])
    verify_link = _path(_links(next(d for d in smtp.deliveries if "verify" in _links(d)[0]))[0])
    if event == "password_change":
        _post(browser, "/account/password", "/account/", current_password=PASSWORD, new_password="fresh passphrase 22")
    elif event == "sign_out_everywhere":
        _post(browser, "/account/sign-out-everywhere", "/account/")
    elif event == "disable":
        from app.auth.service import sign_out_everywhere

        with app.app_context():
            row = db.session.get(User, user.id)
            row.is_active_account = False
            sign_out_everywhere(row, reason="disabled")
    else:
        _post(
            browser,
            "/account/profile",
            "/account/",
            display_name="L",
            email="moved@example.com",
            current_password=PASSWORD,
        )
        moved = next(d for d in smtp.deliveries if d.recipients == ["moved@example.com"])
        assert browser.get(_path(_links(moved)[0])).status_code == 302
    anonymous = _client(mail_app, "10.9.9.9")
    assert anonymous.get(reset_link).status_code == 400
    assert anonymous.get(verify_link).status_code == 400


# 6. The password form ------------------------------------------------------------------------


def test_the_password_form_counts_wrong_answers_toward_the_lockout(mail_app, make_user, app, api_auth, auth):
    user = make_user(email="guess@example.com")
    browser = _client(mail_app)
    auth(browser).login("guess@example.com")
    api = _client(mail_app)
    headers = api_auth(api).headers("guess@example.com")
    form = {"new_password": "x" * 20}
    statuses = [
        _post(browser, "/account/password", "/account/", current_password=f"guess {n}", **form).status_code
        for n in range(4)
    ]
    assert statuses == [422] * 4
    # the fifth wrong password, over the API from the same client, completes the count
    api.patch("/api/v1/me", json={"email": "x@example.com", "current_password": "guess 5"}, headers=headers)
    # the client is now locked out of this account: even the right password is refused
    right = _post(browser, "/account/password", "/account/", current_password=PASSWORD, **form)
    assert right.status_code == 429 and "Too many wrong passwords" in right.get_data(as_text=True)
    locked = api.patch("/api/v1/me", json={"email": "x@example.com", "current_password": PASSWORD}, headers=headers)
    assert locked.status_code == 429 and locked.json["type"].endswith("/too-many-password-attempts")
    with app.app_context():
        assert db.session.get(LoginFailures, (user.id, "10.0.0.1")).locked_until is not None
        assert db.session.get(User, user.id).password_hash == user.password_hash


def test_the_password_form_is_rate_limited_per_account(make_app, make_user, smtp, auth):
    make_user(email="limited@example.com")
    # lockout disabled in effect (huge thresholds): only the rate limit can stop the guessing
    app = make_app(smtp_url=smtp.url, login_lockout_threshold=100, login_account_lockout_threshold=10000)
    browser = _client(app)
    auth(browser).login("limited@example.com")
    statuses = []
    for n in range(7):
        browser.environ_base["REMOTE_ADDR"] = f"10.0.1.{n}"  # a new address does not reset the budget
        statuses.append(
            _post(
                browser, "/account/password", "/account/", current_password=f"guess {n}", new_password="z" * 20
            ).status_code
        )
    assert statuses[:5] == [422] * 5 and statuses[5:] == [429, 429]


# 7. Lockout without denial of service -----------------------------------------------------------


def test_a_strangers_wrong_passwords_do_not_lock_the_owner_out(mail_app, make_user, app, auth):
    make_user(email="owner@example.com")
    attacker = _client(mail_app, "203.0.113.50")
    for _ in range(6):
        auth(attacker).login("owner@example.com", "wrong password!!", expect=401)
    auth(attacker).login("owner@example.com", expect=401)  # the attacker's client is locked out
    owner = _client(mail_app, "10.0.0.8")
    auth(owner).login("owner@example.com")  # the owner is not
    assert _events(app, "client_locked_out") >= 1 and _events(app, "account_locked") == 0


def test_ipv6_clients_are_counted_by_their_64(mail_app, make_user, app, auth):
    user = make_user(email="v6@example.com")
    for host in range(5):  # five addresses of one /64: one client
        attacker = _client(mail_app, f"2001:db8:1:2::{host + 1}")
        auth(attacker).login("v6@example.com", "wrong password!!", expect=401)
    with app.app_context():
        pair = db.session.get(LoginFailures, (user.id, "2001:db8:1:2::/64"))
        assert pair.failures == 5 and pair.locked_until is not None


def test_a_distributed_attack_locks_the_account_and_the_owner_unlocks_it_by_email(mail_app, smtp, make_user, app, auth):
    user = make_user(email="target@example.com")
    for n in range(20):  # 20 addresses, one guess each: no client reaches its own threshold
        auth(_client(mail_app, f"198.51.100.{n + 1}")).login("target@example.com", "wrong password!!", expect=401)
    owner = _client(mail_app, "10.0.0.9")
    auth(owner).login("target@example.com", expect=401)  # the account itself is locked
    assert _events(app, "account_locked") == 1
    [notice] = [d for d in smtp.deliveries if d.recipients == ["target@example.com"]]
    unlock = next(_path(link) for link in _links(notice) if "/auth/unlock/" in link)
    assert owner.get(unlock).status_code == 200  # GET only shows the button (mail scanners open links)
    auth(owner).login("target@example.com", expect=401)
    assert _post(owner, unlock).status_code == 302
    auth(owner).login("target@example.com")
    assert _user(app, user.id).locked_until is None
    assert _post(owner, unlock).status_code == 400  # once only


def test_the_owner_is_told_once_an_hour_not_once_a_guess(mail_app, smtp, make_user, auth):
    make_user(email="noisy@example.com")
    for n in range(4):
        attacker = _client(mail_app, f"192.0.2.{n + 1}")
        for _ in range(5):
            auth(attacker).login("noisy@example.com", "wrong password!!", expect=401)
    assert len([d for d in smtp.deliveries if d.recipients == ["noisy@example.com"]]) == 1


def test_a_password_reset_unlocks_the_account(mail_app, smtp, make_user, app, auth):
    user = make_user(email="reset@example.com")
    with app.app_context():
        row = db.session.get(User, user.id)
        row.failed_login_count = 20
        row.locked_until = utcnow() + timedelta(hours=1)
        db.session.add(LoginFailures(user_id=user.id, client="10.0.0.3", failures=5, locked_until=row.locked_until))
        db.session.commit()
    owner = _client(mail_app, "10.0.0.3")
    _post(owner, "/auth/reset", email="reset@example.com")
    [delivery] = smtp.deliveries
    assert _post(owner, _path(_links(delivery)[0]), password="the new passphrase").status_code == 302
    auth(owner).login("reset@example.com", "the new passphrase")
