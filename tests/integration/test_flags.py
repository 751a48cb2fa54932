"""Feature flags: the /admin/flags page (permission, CSRF, audit, validation) and
`feature_enabled`, served from the cache without touching the database and invalidated by
every write path: in the same app at once and, with Redis, on another instance within 1 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis import Redis
from sqlalchemy import event, select

from app.audit.models import AuditEvent
from app.cache.aside import state
from app.cache.local import MISSING, SEPARATOR
from app.errors import Conflict
from app.extensions import db
from app.flags import service
from app.flags.models import FeatureFlag
from app.users.models import User
from tests.conftest import SERVICES
from tests.integration.test_admin_pages import post, toasts
from tests.support import csrf_token, wait_until

BUS_MARKER = "tests.bus-marker"


@pytest.fixture()
def admin(app, people, auth):
    """A browser signed in as admin@example.com."""
    return auth(app.test_client()).signed_in("admin@example.com")


def _actor(app) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        db.session.expunge(user)
        return user


def _flag(app, name="new_dashboard", enabled=False, description="The redesigned dashboard") -> None:
    with app.app_context():
        service.create_flag(_actor(app), name, description, enabled)


def _stored(app, name) -> FeatureFlag | None:
    with app.app_context():
        flag = db.session.scalar(select(FeatureFlag).where(FeatureFlag.name == name))
        if flag is not None:
            db.session.expunge(flag)
        return flag


def _enabled(app, name="new_dashboard") -> bool:
    with app.app_context():
        return service.feature_enabled(name)


def _events(app, target) -> list[AuditEvent]:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.target == target).order_by(AuditEvent.id)).all()
        for entry in events:
            db.session.expunge(entry)
        return list(events)


def _wait_for_bus(app) -> None:
    """With Redis, L1 is used only once this instance listens to the invalidation bus."""
    with app.app_context():
        bus = state().bus
        bus.ensure_listening()
        assert bus.redis_url is None or bus.ready.wait(5), "the L1 invalidation bus did not subscribe"


def _drain_bus(app) -> None:
    """Wait until this app's bus listener has applied every drop published so far, its own
    included (it hears itself): Redis delivers one channel's messages in order, so once a
    marker published now has been applied, so has everything before it."""
    with app.app_context():
        bus = state().bus
        if bus.redis_url is None:
            return
        bus.local.set(BUS_MARKER, "x", True)
        with Redis.from_url(bus.redis_url) as client:
            client.publish(bus.channel, f"{BUS_MARKER}{SEPARATOR}x")
        wait_until(lambda: bus.local.get(BUS_MARKER, "x") is MISSING, 5, message="the bus to apply its drops")


@contextmanager
def _statements(app) -> Iterator[list[str]]:
    """The SQL statements `app`'s engine runs inside the block."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


# The page: who may use it -----------------------------------------------------------------


def test_only_flags_manage_opens_the_page_and_sees_the_link(app, people, auth):
    _flag(app)
    for role, status in {"admin": 200, "manager": 403, "user": 403, "viewer": 403}.items():
        assert auth(app.test_client()).signed_in(f"{role}@example.com").get("/admin/flags").status_code == status, role
    anonymous = app.test_client().get("/admin/flags")
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    page = auth(app.test_client()).signed_in("admin@example.com").get("/admin/flags").get_data(as_text=True)
    assert 'href="/admin/flags"' in page and "new_dashboard" in page and "The redesigned dashboard" in page
    manager_nav = auth(app.test_client()).signed_in("manager@example.com").get("/admin/").get_data(as_text=True)
    assert 'href="/admin/flags"' not in manager_nav


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/admin/flags", {"name": "beta_reports"}),
        ("/admin/flags/new_dashboard/toggle", {"enabled": "1"}),
        ("/admin/flags/new_dashboard/delete", {}),
    ],
)
def test_a_manager_cannot_change_flags(app, people, path, form, auth):
    _flag(app)
    manager = auth(app.test_client()).signed_in("manager@example.com")
    assert post(manager, path, **form).status_code == 403
    assert _stored(app, "beta_reports") is None
    assert _stored(app, "new_dashboard") is not None and not _stored(app, "new_dashboard").enabled
    assert len(_events(app, "flag:new_dashboard")) == 1  # only its creation


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/admin/flags", {"name": "beta_reports"}),
        ("/admin/flags/new_dashboard/toggle", {"enabled": "1"}),
        ("/admin/flags/new_dashboard/delete", {}),
    ],
)
def test_actions_refuse_a_missing_csrf_token(app, admin, path, form):
    _flag(app)
    assert admin.post(path, data={"confirmed": "yes", **form}).status_code == 400
    assert _stored(app, "beta_reports") is None
    assert _stored(app, "new_dashboard") is not None and not _stored(app, "new_dashboard").enabled


# What the actions do, and what they audit ------------------------------------------------


def test_create_toggle_and_delete_are_audited_with_before_and_after(app, admin):
    response = post(admin, "/admin/flags", name="new_dashboard", description="The redesigned dashboard", enabled="1")
    assert response.status_code == 302
    assert "success" in toasts(admin.get(response.headers["Location"]).get_data(as_text=True))
    flag = _stored(app, "new_dashboard")
    assert flag.enabled and flag.description == "The redesigned dashboard"
    assert flag.updated_by_user_id == _actor(app).id

    assert post(admin, "/admin/flags/new_dashboard/toggle", enabled="0").status_code == 302
    assert not _stored(app, "new_dashboard").enabled
    assert post(admin, "/admin/flags/new_dashboard/delete").status_code == 302
    assert _stored(app, "new_dashboard") is None

    events = _events(app, "flag:new_dashboard")
    assert [e.event for e in events] == ["flag_created", "flag_updated", "flag_deleted"]
    assert {e.actor_user_id for e in events} == {_actor(app).id}
    created, updated, deleted = (e.data for e in events)
    assert created == {"after": {"enabled": True, "description": "The redesigned dashboard"}}
    assert updated == {"before": {"enabled": True}, "after": {"enabled": False}}
    assert deleted == {"before": {"enabled": False, "description": "The redesigned dashboard"}}


def test_setting_the_state_a_flag_already_has_changes_nothing(app, admin):
    _flag(app, enabled=True)
    assert post(admin, "/admin/flags/new_dashboard/toggle", enabled="1").status_code == 302
    assert [e.event for e in _events(app, "flag:new_dashboard")] == ["flag_created"]


def test_with_htmx_the_toggle_swaps_the_row(app, admin):
    _flag(app)
    response = admin.post(
        "/admin/flags/new_dashboard/toggle",
        data={"csrf_token": csrf_token(admin, "/"), "enabled": "1"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    row = response.get_data(as_text=True)
    assert "<html" not in row
    assert 'id="flag-new_dashboard"' in row and 'data-enabled="true"' in row and "Turn off" in row
    assert _stored(app, "new_dashboard").enabled


def test_without_javascript_delete_asks_first(app, admin):
    _flag(app)
    page = admin.post("/admin/flags/new_dashboard/delete", data={"csrf_token": csrf_token(admin, "/")})
    assert page.status_code == 200 and "Delete the flag &#39;new_dashboard&#39;?" in page.get_data(as_text=True)
    assert _stored(app, "new_dashboard") is not None


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "New Dashboard"}, "lower-case letters, digits and &#39;_&#39;"),
        ({"name": "x"}, "2–64 characters"),
        ({"name": "new_dashboard"}, "A flag named &#39;new_dashboard&#39; already exists."),
        ({"name": "long_text", "description": "x" * 201}, "At most 200 characters."),
    ],
)
def test_invalid_flags_are_refused_with_a_clear_message(app, admin, form, message):
    _flag(app)
    response = post(admin, "/admin/flags", **form)
    assert response.status_code == 302
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "error" in toasts(page) and message in page
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(FeatureFlag)) == 1
    assert [e.event for e in _events(app, "flag:new_dashboard")] == ["flag_created"]


def test_a_flag_just_created_by_someone_else_is_a_conflict_and_nothing_of_it_is_kept(app, people, monkeypatch):
    _flag(app)
    monkeypatch.setattr(service.flags, "name_taken", lambda name: False)  # their commit landed after our check
    with app.app_context():
        with pytest.raises(Conflict, match="just created by someone else"):
            service.create_flag(_actor(app), "new_dashboard", "Mine")
        service.create_flag(_actor(app), "beta_reports")  # the session is usable again
    assert _stored(app, "new_dashboard").description == "The redesigned dashboard"
    assert [e.event for e in _events(app, "flag:new_dashboard")] == ["flag_created"]
    assert _stored(app, "beta_reports") is not None


def test_toggling_or_deleting_an_unknown_flag_is_not_found(app, admin):
    assert post(admin, "/admin/flags/nope/toggle", enabled="1").status_code == 404
    assert post(admin, "/admin/flags/nope/delete").status_code == 404


def test_a_toggle_without_a_state_is_refused(app, admin):
    _flag(app)
    response = post(admin, "/admin/flags/new_dashboard/toggle")
    assert "error" in toasts(admin.get(response.headers["Location"]).get_data(as_text=True))
    assert not _stored(app, "new_dashboard").enabled


# feature_enabled ----------------------------------------------------------------------------


def test_feature_enabled_is_true_false_or_false_for_unknown_flags(app, people):
    _flag(app, "new_dashboard", enabled=True)
    _flag(app, "beta_reports", enabled=False)
    assert _enabled(app, "new_dashboard") is True
    assert _enabled(app, "beta_reports") is False
    assert _enabled(app, "never_created") is False
    with app.app_context():
        assert service.flag_states() == {"new_dashboard": True, "beta_reports": False}


def test_feature_enabled_is_a_template_global(app, people):
    template = "{% if feature_enabled('new_dashboard') %}new{% else %}old{% endif %} {{ feature_enabled('nope') }}"
    with app.test_request_context("/"):
        assert app.jinja_env.from_string(template).render() == "old False"
    _flag(app, enabled=True)
    with app.test_request_context("/"):
        assert app.jinja_env.from_string(template).render() == "new False"


def test_after_the_first_call_feature_enabled_reads_the_cache_not_the_database(app, people):
    _flag(app, enabled=True)
    _wait_for_bus(app)
    _drain_bus(app)  # the flag's own drop, heard late, would empty L1 in the middle of the count
    with app.app_context():
        assert service.feature_enabled("new_dashboard")  # the one load
        cache = state()
        computed, l1_hits = cache.computed, cache.l1_hits
        with _statements(app) as statements:
            for _ in range(50):
                assert service.feature_enabled("new_dashboard")
                assert not service.feature_enabled("unknown_flag")
        assert statements == []
        assert cache.computed == computed and cache.l1_hits == l1_hits + 100  # one L1 lookup per call


# Every write path invalidates: seen at once in this app --------------------------------------


def _create(client):
    return post(client, "/admin/flags", name="new_dashboard", enabled="1")


def _turn_on(client):
    return post(client, "/admin/flags/new_dashboard/toggle", enabled="1")


def _turn_off(client):
    return post(client, "/admin/flags/new_dashboard/toggle", enabled="0")


def _turn_on_with_htmx(client):
    return client.post(
        "/admin/flags/new_dashboard/toggle",
        data={"csrf_token": csrf_token(client, "/"), "enabled": "1"},
        headers={"HX-Request": "true"},
    )


def _delete(client):
    return post(client, "/admin/flags/new_dashboard/delete")


# (write through the page, the flag before it (None: no flag), the state expected after)
WRITES = [
    (_create, None, True),
    (_turn_on, False, True),
    (_turn_off, True, False),
    (_turn_on_with_htmx, False, True),
    (_delete, True, False),
]


@pytest.mark.parametrize(("write", "before", "after"), WRITES, ids=[w[0].__name__.strip("_") for w in WRITES])
def test_every_write_is_seen_at_once_by_feature_enabled(app, admin, write, before, after):
    if before is not None:
        _flag(app, enabled=before)
    _wait_for_bus(app)
    assert _enabled(app) is bool(before)  # cached now (L1 and L2)
    with app.app_context(), _statements(app) as statements:
        assert service.feature_enabled("new_dashboard") is bool(before)
    assert statements == []  # really served from the cache, so only invalidation can change it
    assert write(admin).status_code in (200, 302)
    assert _enabled(app) is after


@pytest.fixture()
def other_instance(make_app):
    """A second app on the same database and Redis: another web process, as far as caching goes.
    One per test: its L1 must not carry a previous test's flags (rows deleted between tests by
    SQL publish no invalidation)."""
    other = make_app()
    yield other
    with other.app_context():
        db.engine.dispose()


@pytest.mark.skipif(not SERVICES, reason="the L1 bus needs Redis (services profile)")
@pytest.mark.parametrize(("write", "before", "after"), WRITES, ids=[w[0].__name__.strip("_") for w in WRITES])
def test_every_write_reaches_another_instance_within_a_second(app, other_instance, admin, write, before, after):
    other = other_instance
    if before is not None:
        _flag(app, enabled=before)
    _wait_for_bus(other)
    assert _enabled(other) is bool(before)  # the other instance's L1 holds the old state
    with other.app_context():
        hits = state().l1_hits
        assert service.feature_enabled("new_dashboard") is bool(before)
        assert state().l1_hits == hits + 1
        received = state().bus.received
    assert write(admin).status_code in (200, 302)  # on the first instance
    deadline = time.monotonic() + 1.0
    while _enabled(other) is not after and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _enabled(other) is after
    with other.app_context():
        assert state().bus.received > received  # dropped by the bus, not by the 30 s TTL


def test_the_api_lists_the_flags_to_anyone_signed_in_and_sees_a_toggle_at_once(app, people, client, api_auth):
    assert client.get("/api/v1/flags").status_code == 401
    headers = api_auth.headers("user@example.com")
    assert client.get("/api/v1/flags", headers=headers).json == {"flags": {}}
    _flag(app, "new_dashboard", enabled=True)
    _flag(app, "beta_reports", enabled=False)
    assert client.get("/api/v1/flags", headers=headers).json == {
        "flags": {"new_dashboard": True, "beta_reports": False}
    }
    with app.app_context():
        service.set_flag(_actor(app), "beta_reports", True)
    assert client.get("/api/v1/flags", headers=headers).json["flags"]["beta_reports"] is True
    operation = client.get("/api/openapi.json").json["paths"]["/api/v1/flags"]["get"]
    assert operation["x-api-key-scope"] == "self:read"
