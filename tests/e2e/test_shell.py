"""The site shell in Chromium: the header and its menu (with and without JavaScript), the admin
sidebar, toasts from flashes and from htmx `HX-Trigger` events, and colours that keep AA
contrast in both schemes. Screenshots go to test-artifacts/shell/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.core.database import utcnow
from app.core.templating import badge
from tests.support import PASSWORD, PROJECT_ROOT

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("HEARTH_TEST_ARTIFACTS") or PROJECT_ROOT / "test-artifacts") / "shell"
SCHEMES = ("light", "dark")
PHONE, TABLET, DESKTOP = 390, 768, 1280

WIDTH_JS = "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"

# The WCAG contrast ratio of an element's text against the first opaque background behind it.
CONTRAST_JS = """
(selector) => {
  const parse = (value) => (value.match(/[\\d.]+/g) || []).map(Number);
  const channel = (v) => { const c = v / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const backgroundOf = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const rgba = parse(getComputedStyle(node).backgroundColor);
      if (rgba.length === 3 || (rgba.length === 4 && rgba[3] > 0)) return rgba.slice(0, 3);
    }
    return parse(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3);
  };
  return [...document.querySelectorAll(selector)].map((el) => {
    const fg = parse(getComputedStyle(el).color).slice(0, 3);
    const bg = backgroundOf(el);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    return {text: el.textContent.trim(), ratio: (hi + 0.05) / (lo + 0.05), fg, bg};
  });
}
"""


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled", caret="hide")


def _fits(page) -> None:
    widths = page.evaluate(WIDTH_JS)
    assert widths["scroll"] <= widths["inner"], f"{page.url} scrolls sideways: {widths}"


def _box(locator):
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not laid out"
    return box


def _sign_in(page, email: str, password: str = PASSWORD) -> None:
    """Through the real form, landing on the home page (the shell's own page)."""
    page.goto("/auth/login?next=/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


@pytest.fixture()
def member(make_user):
    return make_user(
        email="shell-member@example.com",
        display_name="Alexandria Ocasio-Longname",
        email_verified_at=utcnow(),
    )


@pytest.fixture()
def staff(make_user):
    return make_user(
        email="shell-admin@example.com", display_name="Ada Admin", role="admin", email_verified_at=utcnow()
    )


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("script", [True, False], ids=["js", "nojs"])
def test_on_a_phone_the_nav_is_behind_a_menu_button(new_page, member, scheme, script):
    page, events = new_page(color_scheme=scheme, viewport={"width": PHONE, "height": 800}, java_script_enabled=script)
    _sign_in(page, member.email)
    page.goto("/")
    header = page.locator("header.site-header")
    brand = header.get_by_role("link", name="Hearth")
    toggle = header.locator("summary", has_text="Menu")
    nav = page.get_by_role("navigation", name="Main")
    expect(toggle).to_be_visible()
    expect(nav).to_be_hidden()
    # Brand and button share one row without touching.
    brand_box, toggle_box = _box(brand), _box(toggle)
    assert brand_box["x"] + brand_box["width"] < toggle_box["x"]
    assert abs((brand_box["y"] + brand_box["height"] / 2) - (toggle_box["y"] + toggle_box["height"] / 2)) < 4
    _fits(page)

    toggle.click()
    expect(nav).to_be_visible()
    for name in ("API", "Files", "Alexandria Ocasio-Longname"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    sign_out = nav.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_visible()
    assert _box(sign_out)["height"] < 48, "Sign out wraps"
    _fits(page)
    _shot(page, f"menu-open-{PHONE}-{scheme}-{'js' if script else 'nojs'}")

    toggle.click()
    expect(nav).to_be_hidden()
    events.assert_clean()


@pytest.mark.parametrize("width", [TABLET, DESKTOP])
def test_on_wider_screens_the_nav_sits_in_the_bar(new_page, member, width):
    page, events = new_page(viewport={"width": width, "height": 800})
    _sign_in(page, member.email)
    page.goto("/")
    _shot(page, f"home-signed-in-{width}")
    header = page.locator("header.site-header")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_visible()
    expect(header.locator("summary", has_text="Menu")).to_be_hidden()
    brand, sign_out = header.get_by_role("link", name="Hearth"), nav.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_visible()
    brand_box, files_box, out_box = _box(brand), _box(nav.get_by_role("link", name="Files")), _box(sign_out)
    # One row: brand on the left, links and Sign out after it, all on the brand's line.
    assert brand_box["x"] + brand_box["width"] < files_box["x"] < out_box["x"]
    assert abs(files_box["y"] + files_box["height"] / 2 - (brand_box["y"] + brand_box["height"] / 2)) < 6
    assert out_box["height"] < 48, "Sign out wraps"
    _fits(page)
    events.assert_clean()


def test_without_javascript_the_wide_nav_is_still_open(new_page):
    page, _ = new_page(viewport={"width": DESKTOP, "height": 800}, java_script_enabled=False)
    page.goto("/")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in")).to_be_visible()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_public_pages_never_scroll_sideways(new_page, scheme):
    page, events = new_page(color_scheme=scheme, viewport={"width": DESKTOP, "height": 800})
    for path in ("/", "/auth/login", "/auth/signup", "/no/such/page"):
        page.goto(path)
        for width in (PHONE, TABLET, DESKTOP):
            page.set_viewport_size({"width": width, "height": 800})
            _fits(page)
            name = path.strip("/").replace("/", "-") or "home"
            _shot(page, f"{name}-{width}-{scheme}")
    assert events.page_errors == [] and events.csp_violations == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_admin_pages_get_a_sidebar_on_wide_screens(new_page, staff, scheme):
    page, events = new_page(color_scheme=scheme, viewport={"width": DESKTOP, "height": 800})
    _sign_in(page, staff.email)
    page.goto("/admin/")
    admin_nav = page.get_by_role("navigation", name="Admin")
    content = page.locator(".admin-content")
    nav_box, content_box = _box(admin_nav), _box(content)
    assert nav_box["x"] + nav_box["width"] <= content_box["x"], "the admin nav is a sidebar at 1280 px"
    assert content_box["width"] >= 950, f"room for tables: {content_box['width']}px"
    _shot(page, f"admin-{DESKTOP}-{scheme}")
    for width in (PHONE, TABLET):
        page.set_viewport_size({"width": width, "height": 800})
        nav_box, content_box = _box(admin_nav), _box(content)
        assert nav_box["y"] + nav_box["height"] <= content_box["y"] + 1, f"the admin nav is above the page at {width}"
        _fits(page)
        _shot(page, f"admin-{width}-{scheme}")
    expect(admin_nav.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    events.assert_clean()


def test_a_flash_is_a_toast_that_can_be_dismissed(new_page, member):
    page, events = new_page(viewport={"width": DESKTOP, "height": 800})
    _sign_in(page, member.email)
    toasts = page.locator("#toasts")
    toast = toasts.locator(".toast--success")
    expect(toast).to_have_count(1)
    expect(toast).to_have_attribute("role", "status")
    expect(toast).to_contain_text("Welcome back")
    # Floating over the page, bottom right, with JavaScript.
    box = _box(toast)
    assert box["x"] + box["width"] > DESKTOP - 40 and box["y"] > 400
    toast.get_by_role("button", name="Dismiss").click()
    expect(toasts.locator(".toast")).to_have_count(0)
    page.reload()
    expect(toasts.locator(".toast")).to_have_count(0)  # shown once
    events.assert_clean()


def test_without_javascript_a_flash_stays_in_the_page(new_page, member):
    page, events = new_page(viewport={"width": PHONE, "height": 800}, java_script_enabled=False)
    _sign_in(page, member.email)
    toast = page.locator("#toasts .toast--success")
    expect(toast).to_be_visible()
    expect(toast.get_by_role("button", name="Dismiss")).to_be_hidden()  # it could not work
    main_box, toast_box = _box(page.locator("main")), _box(toast)
    assert main_box["y"] <= toast_box["y"] < main_box["y"] + 200, "in the flow at the top of the page"
    _fits(page)
    _shot(page, f"toast-nojs-{PHONE}")
    assert events.csp_violations == [] and events.page_errors == []


def test_htmx_toasts_use_the_same_component_and_leave_on_their_own(new_page, live_server_url):
    """An htmx request whose response carries `HX-Trigger: {"toast": …}` (what app.core.toasts
    sends): hearth.js shows it like a flash; a success leaves after ~6 s, an error stays."""
    page, events = new_page(viewport={"width": DESKTOP, "height": 800})
    page.goto("/")

    def answer(route):
        level = route.request.url.rsplit("=", 1)[-1]
        trigger = {"toast": {"message": f"A {level} from the server.", "level": level}}
        route.fulfill(status=200, body="", headers={"HX-Trigger": json.dumps(trigger), "Content-Type": "text/html"})

    page.route("**/_toast-probe*", answer)
    page.evaluate(
        """() => {
          for (const level of ['success', 'error']) {
            const button = document.createElement('button');
            button.id = 'probe-' + level;
            button.textContent = level;
            button.setAttribute('hx-get', '/_toast-probe?level=' + level);
            button.setAttribute('hx-swap', 'none');
            document.querySelector('main').appendChild(button);
            window.htmx.process(button);
          }
        }"""
    )
    page.click("#probe-success")
    success = page.locator("#toasts .toast--success")
    expect(success).to_have_text("A success from the server.")
    expect(success).to_have_attribute("role", "status")
    page.click("#probe-error")
    error = page.locator("#toasts .toast--error")
    expect(error).to_have_text("A error from the server.")
    expect(error).to_have_attribute("role", "alert")
    expect(success).to_have_count(0, timeout=9000)
    page.wait_for_timeout(500)
    expect(error).to_have_count(1)
    error.get_by_role("button", name="Dismiss").click()
    expect(error).to_have_count(0)
    assert events.page_errors == [] and events.csp_violations == []


# One status of each tone, as ui.badge renders it.
BADGES = " ".join(str(badge(status)) for status in ("ready", "processing", "retrying", "failed", "revoked"))
TEXT_COLOURS = "".join(
    f'<p class="{cls}">{cls}</p>'
    for cls in (
        "field-error",
        "error-text",
        "count-alert",
        "muted",
    )
)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_badges_and_status_text_keep_aa_contrast(new_page, scheme):
    page, _ = new_page(color_scheme=scheme, viewport={"width": DESKTOP, "height": 800})
    page.goto("/")
    page.evaluate(
        """([badges, texts]) => {
          const host = document.createElement('section');
          host.innerHTML = '<div id="on-page">' + badges + texts + '</div>' +
                           '<article id="on-card">' + badges + texts + '</article>';
          document.querySelector('main').prepend(host);
        }""",
        [BADGES, TEXT_COLOURS],
    )
    low = [
        item
        for selector in ("#on-page .badge, #on-page p", "#on-card .badge, #on-card p")
        for item in page.evaluate(CONTRAST_JS, selector)
        if item["ratio"] < 4.5
    ]
    assert low == [], f"below 4.5:1 in {scheme}: {low}"
    tones = page.locator("#on-page .badge").evaluate_all("(els) => els.map((el) => el.className)")
    assert len(set(tones)) == 5, tones  # five tones, five colours
    _shot(page, f"colours-{scheme}")
