"""Schemathesis against the whole generated OpenAPI document, in process (WSGI).

Every operation of `/api/openapi.json` gets schema-valid and schema-violating requests (the
examples, coverage, fuzzing and stateful phases of Schemathesis's engine, as its CLI runs
them), once anonymously and once as an administrator. Every response must be no 5xx, a
documented status with its documented content type, headers and schema, and schema-violating
requests must be refused. The app under test has its rate limit raised so the run exercises
the views rather than the limiter.

The run is bounded (MAX_EXAMPLES per operation) and deterministic (derandomized generation,
no example database), so a failure reproduces the same way every time.

Schemathesis's pytest integration (`@schema.parametrize`) is not used: with pytest 9 its
lazy (fixture-built) schemas fail on the removed `Node._nodeid`; the engine needs no pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from schemathesis.engine import events

from app.auth import service as auth_service
from app.extensions import db
from app.users.models import User

MAX_EXAMPLES = 30
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]


@pytest.fixture()
def fuzz_app(make_app: Callable[..., Flask], app: Flask) -> Flask:
    """The session's database, with a budget no fuzzing run reaches."""
    return make_app(rate_limit_default="100000 per minute")


@pytest.fixture()
def admin(fuzz_app: Flask, make_user: Callable[..., User]) -> User:
    """An administrator and a few users, so lists, ids and roles have something to show."""
    for index, roles in enumerate((("user",), ("manager",), ("user",))):
        make_user(email=f"fuzz{index}@example.com", roles=roles, display_name=f"Fuzz {index}")
    return make_user(email="fuzz-admin@example.com", roles=("admin",))


def _schema(fuzz_app: Flask) -> Any:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    schema.config.checks.update(included_check_names=CHECKS)
    # A write whose If-Match fails answers 412 before its body is read (RFC 9110 §13.2.1: the
    # precondition comes first), so 412 is a refusal too.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "412"]
    # The WSGI transport sends requests' default Accept-Encoding but never decodes the body.
    schema.config.update(headers={"Accept-Encoding": "identity"})
    return schema


def _admin_token_provider(fuzz_app: Flask, admin: User) -> type:
    class AdminToken:
        """A fresh access token for each request: the run may sign the administrator out
        everywhere (an id it generates can be theirs), which ends every earlier token."""

        def get(self, case: Any, context: Any) -> str:
            with fuzz_app.app_context():
                user = db.session.get(User, admin.id)
                return auth_service.issue_tokens(user, "schemathesis").access_token

        def set(self, case: Any, token: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    return AdminToken


def _run(schema: Any) -> tuple[list[str], dict[str, set[int]]]:
    """Run every phase: the failures (deduplicated) and the statuses seen per operation."""
    failures: dict[str, str] = {}
    statuses: dict[str, set[int]] = {}
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for case_id, interaction in event.recorder.interactions.items():
                operation = event.recorder.cases[case_id].value.operation
                # Probes with other methods (OPTIONS, TRACE, ...) are not the operation's answers.
                if interaction.response is not None and interaction.request.method == operation.method.upper():
                    statuses.setdefault(operation.label, set()).add(interaction.response.status_code)
                for check in event.recorder.checks.get(case_id, []):
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        case = event.recorder.cases[case_id].value
                        key = f"{failure.operation}: {failure.title}"
                        failures.setdefault(key, f"{key}\n    {failure.message[:600]}\n    {case.as_curl_command()}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.setdefault(repr(event), f"engine error: {getattr(event, 'info', event)}")
    return list(failures.values()), statuses


@pytest.mark.timeout(300)  # ~30 s per identity on a laptop; room for a slow CI machine
@pytest.mark.parametrize("identity", ["anonymous", "admin"])
def test_every_operation_answers_within_its_documented_contract(fuzz_app, admin, identity):
    schema = _schema(fuzz_app)
    if identity == "admin":
        schema.auth(refresh_interval=None)(_admin_token_provider(fuzz_app, admin))
    failures, statuses = _run(schema)
    assert not failures, f"{len(failures)} distinct failures:\n" + "\n".join(failures)
    # The run reached every operation, and as the identity it was meant to be.
    documented = {f"{method.upper()} {path}" for path, item in schema.raw_schema["paths"].items() for method in item}
    assert set(statuses) == documented
    expected = 200 if identity == "admin" else 401
    assert expected in statuses["GET /api/v1/users"] and expected in statuses["GET /api/v1/admin/jobs"]
