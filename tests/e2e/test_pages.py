"""Browser tests: the server-rendered pages as Chromium sees them, under the real CSP."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.core.templating import HTMX_VERSION, SWAGGER_UI_VERSION
from tests.e2e.axe import add_axe, serious_violations

pytestmark = pytest.mark.e2e

# The colour the page actually shows: the first opaque background from <body> up to <html>
# (Pico paints :root; the canvas takes the root's background). Also returns the text colour.
EFFECTIVE_COLOURS_JS = """
() => {
  const parse = (value) => (value.match(/[\\d.]+/g) || []).map(Number);
  let background = null;
  for (let node = document.body; node; node = node.parentElement) {
    const rgba = parse(getComputedStyle(node).backgroundColor);
    if (rgba.length >= 3 && (rgba.length === 3 || rgba[3] > 0)) { background = rgba.slice(0, 3); break; }
  }
  return {background, text: parse(getComputedStyle(document.body).color).slice(0, 3),
          bodyBackground: getComputedStyle(document.body).backgroundColor};
}
"""


def wait_until(page, condition, message: str, timeout_s: float = 5.0) -> None:
    """Poll a Python-side condition while letting the browser deliver its events."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, message
        page.wait_for_timeout(50)


def relative_luminance(rgb: list[float]) -> float:
    """WCAG relative luminance of an sRGB colour (0 = black, 1 = white)."""

    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_landing_page_renders_with_landmarks_and_no_errors(page, events, live_server_url):
    response = page.goto("/")
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("load")

    expect(page).to_have_title("Hearth — a batteries-included Flask platform")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hearth")
    features = page.get_by_role("region", name="What you get")
    expect(features).to_be_visible()
    expect(features.get_by_role("heading", level=3)).to_have_count(6)
    expect(features.get_by_role("heading", name="Secure by default")).to_be_visible()

    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="API", exact=True)).to_have_attribute("href", "/api/docs")
    expect(page.get_by_role("main")).to_be_visible()
    expect(page.get_by_role("main")).to_have_attribute("id", "main")

    footer = page.get_by_role("contentinfo")
    expect(footer).to_be_visible()
    expect(footer.get_by_role("link", name="OpenAPI")).to_have_attribute("href", "/api/openapi.json")
    expect(footer.get_by_role("link", name="Status")).to_have_attribute("href", "/health/live")
    for href in ("/api/openapi.json", "/health/live"):
        linked = page.request.get(href)
        assert linked.status == 200, f"footer link {href} answered {linked.status}"

    # htmx: the vendored, versioned file from our own /static, actually executed.
    page.wait_for_function("() => window.htmx !== undefined")
    assert page.evaluate("() => window.htmx.version") == HTMX_VERSION
    script_src = page.locator("script[src*='htmx']").get_attribute("src")
    # Under its fingerprinted (content-hashed) name.
    assert re.fullmatch(rf"/static/vendor/htmx-{re.escape(HTMX_VERSION)}\.min\.[0-9a-f]{{12}}\.js", script_src)
    htmx_loads = [(status, url) for status, url in events.responses if "htmx" in url]
    assert htmx_loads == [(200, f"{live_server_url}{script_src}")]
    # The CSS loaded too (Pico and ours), from /static.
    stylesheets = page.eval_on_selector_all("link[rel=stylesheet]", "links => links.map(l => l.sheet !== null)")
    assert stylesheets
    assert all(stylesheets)

    assert events.external_requests() == []
    assert events.error_responses() == []
    events.assert_clean()


def test_tab_first_focuses_the_visible_skip_link_and_enter_moves_to_main(page, events):
    page.goto("/")
    skip = page.get_by_role("link", name="Skip to main content")
    before = skip.bounding_box()
    assert before is not None
    assert before["y"] + before["height"] <= 0, "skip link shows before it has focus"

    page.keyboard.press("Tab")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    viewport = page.viewport_size
    assert box is not None
    assert viewport is not None
    assert box["x"] >= 0
    assert box["y"] >= 0
    assert box["x"] + box["width"] <= viewport["width"]
    assert box["y"] + box["height"] <= viewport["height"]
    expect(skip).to_be_in_viewport()

    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    assert urlsplit(page.url).fragment == "main"
    events.assert_clean()


@pytest.mark.parametrize(("scheme", "dark"), [("dark", True), ("light", False)])
def test_theme_follows_the_preferred_colour_scheme(new_page, scheme, dark):
    page, events = new_page(color_scheme=scheme)
    page.goto("/")
    assert page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches") is dark
    colours = page.evaluate(EFFECTIVE_COLOURS_JS)
    assert colours["background"] is not None, f"no page background was painted: {colours}"
    background = relative_luminance(colours["background"])
    text = relative_luminance(colours["text"])
    if dark:
        assert background < 0.1, f"dark scheme, but background {colours['background']} is light"
        assert text > 0.4, f"dark scheme, but text {colours['text']} is dark"
    else:
        assert background > 0.8, f"light scheme, but background {colours['background']} is dark"
        assert text < 0.2, f"light scheme, but text {colours['text']} is light"
    events.assert_clean()


def test_api_docs_render_swagger_ui_from_vendored_files_under_the_csp(page, events, live_server_url):
    response = page.goto("/api/docs")
    assert response is not None
    assert response.status == 200
    operation = page.locator(".opblock", has_text="/api/v1/status")
    expect(operation.first).to_be_visible(timeout=15_000)
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hearth API")
    # Expanding an operation renders responses and highlighted examples: still within the CSP.
    operation.first.locator(".opblock-summary-control").click()
    expect(operation.first.locator(".responses-wrapper")).to_be_visible()

    swagger_files = [url for _, url in events.responses if "swagger-ui" in url]
    vendored = re.escape(f"{live_server_url}/static/vendor/swagger-ui-{SWAGGER_UI_VERSION}/")
    assert any(re.fullmatch(rf"{vendored}swagger-ui-bundle\.[0-9a-f]{{12}}\.js", url) for url in swagger_files)
    assert any(re.fullmatch(rf"{vendored}swagger-ui\.[0-9a-f]{{12}}\.css", url) for url in swagger_files)
    assert (200, f"{live_server_url}/api/openapi.json") in events.responses

    assert events.external_requests() == [], f"requests left 127.0.0.1: {events.external_requests()}"
    assert events.error_responses() == []
    events.assert_clean()


# Swagger UI's operations as it lays them out: the tag sections in document order.
TAG_SECTIONS_JS = (
    "() => [...document.getElementById('api-reference').shadowRoot.querySelectorAll('[data-tag]')]"
    ".map((section) => section.dataset.tag)"
)


PICO_BUTTON_BACKGROUND_JS = """() => {
  const button = document.createElement('button');
  document.getElementById('main').appendChild(button);
  const background = getComputedStyle(button).backgroundColor;
  button.remove();
  return background;
}"""


def test_api_docs_are_isolated_from_the_site_styles_with_one_main_and_tags_in_reading_order(page, events):
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=15_000)
    # Swagger UI lives in a shadow root: the page's stylesheets (Pico's element styles) stop at it.
    assert page.evaluate("() => document.getElementById('api-reference').shadowRoot !== null")
    assert page.evaluate("() => document.querySelector('.swagger-ui') === null")
    schema = page.locator(".swagger-ui .models .json-schema-2020-12-accordion").first
    expect(schema).to_be_visible()
    # A <button> of the page gets Pico's primary background; Swagger UI's schema toggles don't.
    pico_button = page.evaluate(PICO_BUTTON_BACKGROUND_JS)
    assert pico_button not in ("rgba(0, 0, 0, 0)", "transparent")
    assert schema.evaluate("el => getComputedStyle(el).backgroundColor") != pico_button
    # One main landmark: the page's (Swagger UI's own layout would add a second).
    expect(page.get_by_role("main")).to_have_count(1)
    assert page.evaluate(TAG_SECTIONS_JS) == [
        "auth",
        "me",
        "admin",
        "api-keys",
        "exports",
        "meta",
        "notifications",
        "roles",
        "uploads",
        "users",
        "webhooks",
    ]
    events.assert_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_api_docs_pass_axe_in_both_themes_with_operations_open(new_page, scheme):
    page, events = new_page(color_scheme=scheme)
    add_axe(page.context)
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=15_000)
    # Swagger UI's own dark theme, switched by the colour scheme the browser prefers.
    dark_root = "() => document.getElementById('api-reference').shadowRoot.querySelector('html.dark-mode') !== null"
    assert page.evaluate(dark_root) is (scheme == "dark")
    # One operation of each method open, one with "Try it out" (inputs, pickers, buttons), and a schema.
    for method in ("get", "post", "patch", "put", "delete"):
        page.locator(f".swagger-ui .opblock-{method} .opblock-summary-control").first.click()
    page.locator(".swagger-ui .opblock-get .try-out__btn").first.click()
    expect(page.locator(".swagger-ui .opblock-get .execute").first).to_be_visible()
    page.locator(".swagger-ui .models .json-schema-2020-12-accordion").first.click()
    expect(page.locator(".swagger-ui .models .json-schema-2020-12-body").first).to_be_visible()
    events.assert_clean()  # before axe, whose own style checks trip the CSP inside shadow roots
    violations = serious_violations(page)
    assert violations == [], "\n".join(map(str, violations))


def test_unknown_path_shows_the_friendly_404_page(page, events, live_server_url):
    response = page.goto("/no/such/page")
    assert response is not None
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page).to_have_title(re.compile(r"^Page not found · Hearth"))
    expect(page.get_by_text("Error 404")).to_be_visible()
    # People's words, never Werkzeug's stock description.
    expect(page.get_by_text("The requested URL was not found")).to_have_count(0)
    # An <a href="/"> styled as a button (role="button"): still a plain link without JS.
    home = page.locator("a[href='/']", has_text="Back to the home page")
    expect(home).to_be_visible()
    # The error page is the full layout, under the same CSP.
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    assert events.csp_violations == []
    assert events.page_errors == []
    # Chromium logs the document's own 404 to the console; nothing else may fail.
    assert all("status of 404" in message and "/no/such/page" in message for message in events.console_errors), (
        events.console_errors
    )
    assert [url for status, url in events.error_responses()] == [f"{live_server_url}/no/such/page"]

    home.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hearth")
    assert urlsplit(page.url).path == "/"


def test_landing_page_works_without_javascript(new_page):
    page, events = new_page(java_script_enabled=False)
    response = page.goto("/")
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Hearth")
    expect(page.get_by_role("region", name="What you get")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="API", exact=True)).to_be_visible()
    expect(page.get_by_role("contentinfo").get_by_role("link", name="OpenAPI")).to_be_visible()
    # Styling does not depend on scripts: the skip link is still parked off screen.
    box = page.get_by_role("link", name="Skip to main content").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 0
    assert events.csp_violations == []


def test_api_docs_explain_themselves_without_javascript(new_page):
    page, _ = new_page(java_script_enabled=False)
    page.goto("/api/docs")
    # (Playwright's text selectors skip <noscript>, so address the element itself.)
    notice = page.locator("#api-reference noscript p")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("The interactive explorer needs JavaScript")
    expect(page.get_by_role("link", name="/api/openapi.json")).to_have_attribute("href", "/api/openapi.json")


def test_security_headers_reach_the_browser_and_are_enforced(page, events):
    response = page.goto("/")
    assert response is not None
    assert response.status == 200
    headers = response.all_headers()
    csp = headers.get("content-security-policy")
    assert csp, f"no Content-Security-Policy header: {headers}"
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert directives.get("script-src") == ["'self'"] or (
        "script-src" not in directives and directives.get("default-src") == ["'self'"]
    )
    assert directives.get("object-src") == ["'none'"]
    frame_ancestors_none = directives.get("frame-ancestors") == ["'none'"]
    assert frame_ancestors_none or headers.get("x-frame-options", "").upper() == "DENY"
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "same-origin"

    # The browser enforces it: an inline script added to the page never runs and is reported.
    page.evaluate("""() => {
        const script = document.createElement('script');
        script.textContent = 'window.__inlineRan = true';
        document.head.appendChild(script);
    }""")
    wait_until(page, lambda: len(events.csp_violations) > 0, "the inline script was not reported")
    assert page.evaluate("() => window.__inlineRan === true") is False
    assert any("script-src" in message for message in events.csp_violations)


def test_pages_refuse_to_be_framed(page, events):
    # frame-ancestors 'none' refuses every embedder, the page's own origin included, so a frame
    # added to the landing page (same origin, allowed by its frame-src) must stay empty.
    page.goto("/")
    page.evaluate("""() => {
        const frame = document.createElement('iframe');
        frame.id = 'framed';
        frame.src = '/';
        document.body.appendChild(frame);
    }""")
    wait_until(
        page,
        lambda: any("frame-ancestors" in m for m in events.csp_violations),
        f"framing was not refused by frame-ancestors: {events.csp_violations}",
    )
    framed = page.frame_locator("#framed")
    expect(framed.get_by_role("heading", name="Hearth", level=1)).to_have_count(0)
