"""The notification catalogue: every kind is complete, its templates are marked for translation
and recognised when stored, and its title fits the column."""

from __future__ import annotations

import re

import pytest

from app.i18n import _STORED_TEMPLATES
from app.notifications.catalogue import CATALOGUE, KINDS
from app.notifications.service import PARAM_MAX, TITLE_MAX

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_kind_names_are_unique_dotted_and_fit_the_column():
    assert len(CATALOGUE) == len(KINDS)
    for kind in KINDS:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", kind.name) and len(kind.name) <= 64


def test_the_issue_s_kinds_are_all_there_and_security_ones_email():
    expected = {
        "export.ready",
        "export.failed",
        "upload.ready",
        "upload.rejected",
        "security.new_sign_in",
        "security.password_changed",
        "security.recovery_code_used",
        "security.impersonated",
        "security.two_factor_reset",
        "account.role_changed",
    }
    assert expected <= set(CATALOGUE)
    assert {kind.name for kind in KINDS if kind.security} == {
        "security.new_sign_in",
        "security.password_changed",
        "security.recovery_code_used",
        "security.impersonated",
        "security.two_factor_reset",
    }
    assert all(kind.email for kind in KINDS if kind.security)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_templates_are_remembered_for_translation_where_they_have_values(kind):
    for template in (kind.title, kind.body):
        if "%(" in template:
            assert template in _STORED_TEMPLATES  # N_ saw it: translate_stored recognises filled copies


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_a_title_filled_with_the_longest_values_fits_the_column_mostly(kind):
    values = dict.fromkeys(PLACEHOLDER.findall(kind.title), "x" * PARAM_MAX)
    # A title longer than the column is cut (and then shown in English); at most one long value fits whole.
    assert len(kind.title % values) <= TITLE_MAX or len(values) > 1
