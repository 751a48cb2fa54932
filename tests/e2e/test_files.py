"""Uploading an image through /files in a real browser: progress bar, then the thumbnail."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def signed_in_page(page, live_server_url, make_user):
    make_user(email="e2e-files@example.com", display_name="Uploader")
    page.goto(live_server_url + "/auth/login")
    page.get_by_label("Email").fill("e2e-files@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Welcome back, Uploader.")).to_be_visible()
    return page


def _jpeg(tmp_path):
    path = tmp_path / "holiday.jpg"
    image = Image.new("RGB", (800, 600), (30, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def test_an_image_uploads_with_progress_and_its_thumbnail_appears(signed_in_page, events, live_server_url, tmp_path):
    page = signed_in_page
    page.goto(live_server_url + "/files/")
    expect(page.get_by_text("No files yet.")).to_be_visible()
    page.get_by_label("Kind").first.select_option("avatar")
    page.set_input_files("#upload-file", str(_jpeg(tmp_path)))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("holiday.jpg uploaded.")).to_be_visible()
    progress = page.locator("#upload-progress")
    expect(progress).to_be_visible()
    assert progress.evaluate("el => el.value") == 100
    thumbnail = page.locator("#file-rows img.thumb").first
    expect(thumbnail).to_be_visible()
    page.wait_for_function(
        "() => { const img = document.querySelector('#file-rows img.thumb');"
        " return img && img.complete && img.naturalWidth === 256; }"
    )
    expect(page.locator("#file-rows tr").first.locator('.badge[data-status="ready"]')).to_have_text("Ready")
    assert not events.csp_violations and not events.page_errors


def test_a_refused_type_is_explained_before_any_byte_is_sent(signed_in_page, events, live_server_url, tmp_path):
    page = signed_in_page
    page.goto(live_server_url + "/files/")
    svg = tmp_path / "drawing.svg"
    svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    page.get_by_label("Kind").first.select_option("avatar")
    page.set_input_files("#upload-file", str(svg))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-message")).to_contain_text("not accepted")
    assert not any("/storage/upload" in url for url in events.requests)


def test_a_refusal_by_the_server_shows_its_reason(signed_in_page, events, live_server_url, tmp_path):
    """The local checks pass (type and size); the server refuses the name, answering problem+json."""
    page = signed_in_page
    page.goto(live_server_url + "/files/")
    page.get_by_label("Kind").first.select_option("avatar")
    jpeg = _jpeg(tmp_path).read_bytes()
    page.set_input_files("#upload-file", files=[{"name": ". . .", "mimeType": "image/jpeg", "buffer": jpeg}])
    with page.expect_response(lambda response: response.url.endswith("/files/presign")) as presign:
        page.get_by_role("button", name="Upload").click()
    assert presign.value.status == 422 and presign.value.headers["content-type"] == "application/problem+json"
    expect(page.locator("#upload-message")).to_have_text("The file name must be a plain name, without folders.")
    expect(page.get_by_role("button", name="Upload")).to_be_enabled()
    assert not any("/storage/upload" in url for url in events.requests) and not events.page_errors


def test_an_upload_works_without_javascript(new_page, live_server_url, make_user, tmp_path):
    """The form is a plain multipart POST: the server stores, checks and queues the file, then
    sends the browser back to the library, where the file is listed."""
    make_user(email="e2e-nojs@example.com", display_name="No Script")
    page, events = new_page(java_script_enabled=False)
    page.goto(live_server_url + "/auth/login")
    page.get_by_label("Email").fill("e2e-nojs@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server_url + "/files/")
    expect(page.get_by_text("Works without JavaScript")).to_be_visible()
    page.get_by_label("Kind", exact=True).select_option("avatar")
    page.set_input_files("#upload-file", str(_jpeg(tmp_path)))
    with page.expect_navigation():
        page.get_by_role("button", name="Upload").click()
    assert page.url == live_server_url + "/files/"
    expect(page.get_by_text("Uploaded holiday.jpg — processing")).to_be_visible()
    row = page.locator("#file-rows tr").first
    expect(row).to_contain_text("holiday.jpg")
    assert any(url.endswith("/files/upload") for url in events.requests)
    assert not any("/files/presign" in url or "/storage/upload" in url for url in events.requests)
    assert not events.csp_violations and not events.page_errors
