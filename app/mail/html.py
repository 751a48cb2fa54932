"""The HTML part of a stored email, made safe to show inside a page of this site (/dev/mail).

The page's CSP forbids inline styles and scripts, and the message is a whole document of its
own, so it is not pasted in as it is: an allowlist keeps the text and the structural tags
(paragraphs, lists, tables, emphasis, links) and drops everything else — `<head>`, `<style>`
and `<script>` with their content, every attribute but an `<a>`'s http(s)/mailto `href`.
Text is escaped again on the way out. The emails are rendered from our own templates, so
this is belt and braces, not the only line of defence.
"""

from __future__ import annotations

from html import escape
from html.parser import HTMLParser

from markupsafe import Markup

ALLOWED_TAGS = frozenset(
    {
        "a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr", "i", "li",
        "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
VOID_TAGS = frozenset({"br", "hr"})
DROPPED_WITH_CONTENT = frozenset({"head", "script", "style", "title", "template", "noscript", "iframe", "object"})
LINK_SCHEMES = ("http://", "https://", "mailto:")


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.skipping = 0  # depth inside a dropped element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self.skipping += 1
            return
        if self.skipping or tag not in ALLOWED_TAGS:
            return
        attributes = ""
        if tag == "a":
            href = next((value for name, value in attrs if name == "href" and value), None)
            if href and href.strip().lower().startswith(LINK_SCHEMES):
                attributes = f' href="{escape(href.strip(), quote=True)}"'
        self.out.append(f"<{tag}{attributes}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS and not self.skipping:
            self.out.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping or tag not in self.open:
            return
        while self.open:  # close whatever was left open inside it
            closed = self.open.pop()
            self.out.append(f"</{closed}>")
            if closed == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{tag}>" for tag in reversed(self.open))


def sanitized_html(document: str) -> Markup:
    """The body of an HTML email as markup safe to include in a page (module docstring)."""
    sanitizer = _Sanitizer()
    sanitizer.feed(document)
    return Markup(sanitizer.result())  # noqa: S704  (built only from escaped text and allowlisted tags)
