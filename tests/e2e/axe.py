"""axe-core for the browser tests: the vendored build (tests/e2e/vendor/, from npm, MPL-2.0), how
it gets into a page, and one run reduced to what fails Hearth's bar.

The script is added with `BrowserContext.add_init_script`, which Chromium runs through the
DevTools protocol before the page's own scripts, so it loads under the app's real
Content-Security-Policy without a nonce, `bypass_csp` or any change to the policy. (Running axe
on a page with shadow roots makes Chromium report blocked inline styles of axe's own: callers
that watch CSP violations skip the ones raised while axe runs.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

AXE_VERSION = "4.14.1"
AXE_SCRIPT = Path(__file__).parent / "vendor" / f"axe-core-{AXE_VERSION}.min.js"
# Every WCAG 2.0, 2.1 and 2.2 level A and AA rule axe has.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
FAILING_IMPACTS = frozenset({"critical", "serious"})

_RUN = """
async (tags) => {
  const results = await window.axe.run(document, {
    runOnly: {type: 'tag', values: tags},
    resultTypes: ['violations'],
  });
  return results.violations.map((violation) => ({
    id: violation.id,
    impact: violation.impact,
    help: violation.help,
    nodes: violation.nodes.map((node) => {
      const data = (node.any[0] || node.all[0] || node.none[0] || {}).data || {};
      const colours = data.fgColor ? ` (${data.fgColor} on ${data.bgColor}: ${data.contrastRatio}:1, ` +
        `needs ${data.expectedContrastRatio})` : '';
      return {impact: node.impact, target: node.target.flat().join(' '), detail: colours};
    }),
  }));
}
"""


@dataclass(frozen=True)
class Violation:
    """One element failing one rule, at `impact` (critical or serious)."""

    rule: str
    impact: str
    help: str
    target: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.target}{self.detail}"


def add_axe(context: Any) -> None:
    """Load axe into every page of a Playwright browser context, from now on."""
    context.add_init_script(path=str(AXE_SCRIPT))


def serious_violations(page: Any) -> list[Violation]:
    """Run axe on the page as it is now: its critical and serious violations, one per element."""
    found = []
    for violation in page.evaluate(_RUN, AXE_TAGS):
        for node in violation["nodes"]:
            impact = node["impact"] or violation["impact"]
            if impact in FAILING_IMPACTS:
                found.append(Violation(violation["id"], impact, violation["help"], node["target"], node["detail"]))
    return found
