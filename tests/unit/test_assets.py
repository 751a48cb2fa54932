"""The asset manifest: content-hashed names for every static file, and the way back."""

from __future__ import annotations

import os
import re

import pytest

from app.core.assets import AssetManifest, fingerprinted_name


@pytest.fixture()
def static(tmp_path):
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "site.css").write_text("body { color: red; }")
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "lib-1.2.3.min.js").write_text("var lib = 1;")
    (tmp_path / "LICENSE").write_text("MIT")
    return tmp_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("css/site.css", "css/site.abc.css"),
        ("vendor/lib-1.2.3.min.js", "vendor/lib-1.2.3.min.abc.js"),
        ("LICENSE", "LICENSE.abc"),
        ("favicon.ico", "favicon.abc.ico"),
    ],
)
def test_the_fingerprint_goes_before_the_last_suffix(path, expected):
    assert fingerprinted_name(path, "abc") == expected


def test_every_file_gets_a_content_hashed_name_that_resolves_back(static):
    manifest = AssetManifest(static)
    assert len(manifest) == 3
    name = manifest.name_for("css/site.css")
    assert re.fullmatch(r"css/site\.[0-9a-f]{12}\.css", name)
    assert manifest.resolve(name) == "css/site.css"
    assert manifest.resolve("css/site.css") is None, "a plain name is not a fingerprinted one"
    assert manifest.resolve("css/site.000000000000.css") is None


def test_a_changed_file_gets_a_different_name_and_the_same_content_the_same_name(static):
    before = AssetManifest(static).name_for("css/site.css")
    assert AssetManifest(static).name_for("css/site.css") == before
    (static / "css" / "site.css").write_text("body { color: blue; }")
    after = AssetManifest(static)
    assert after.name_for("css/site.css") != before
    assert after.resolve(before) is None


def test_an_unknown_file_fails_loudly(static):
    with pytest.raises(LookupError, match=r"css/missing\.css"):
        AssetManifest(static).name_for("css/missing.css")


def test_watch_mode_renames_an_edited_file_without_a_restart(static):
    manifest = AssetManifest(static, watch=True)
    before = manifest.name_for("css/site.css")
    stylesheet = static / "css" / "site.css"
    stylesheet.write_text("body { color: green; }")
    os.utime(stylesheet, ns=(1, 1))  # a different mtime even on coarse filesystem clocks
    after = manifest.name_for("css/site.css")
    assert after != before
    assert manifest.resolve(after) == "css/site.css"
    assert manifest.resolve(before) is None, "the old name would serve bytes it does not name"
    (static / "js").mkdir()
    (static / "js" / "new.js").write_text("1;")
    assert manifest.name_for("js/new.js").startswith("js/new.")


def test_without_watch_mode_names_are_fixed_at_start_up(static):
    manifest = AssetManifest(static)
    before = manifest.name_for("css/site.css")
    (static / "css" / "site.css").write_text("body { color: green; }")
    assert manifest.name_for("css/site.css") == before
