"""axe-core on the pages a journey visits: WCAG 2.2 A and AA rules, and no serious or critical
violation allowed.

A journey calls `audit(page)` once each page it reaches has settled (and again for a state
worth checking on its own, such as a form showing its error summary). The browser fixture
keeps the list of pages each context navigated to and fails the test if any of them was never
audited, so a new step in a journey cannot slip past the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe

# The rule sets of WCAG 2.0, 2.1 and 2.2 at levels A and AA (axe-core's tags).
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING_IMPACTS = {"serious", "critical"}
_AXE = Axe()
_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


def page_key(url: str) -> str:
    """The page a URL shows, with record ids folded, so `/referrals/7` and `/referrals/9` are
    the same page: a journey must audit each kind of page it visits, not each record."""
    return _ID_SEGMENT.sub("/<id>", urlsplit(url).path) or "/"


@dataclass
class AuditLog:
    """Pages navigated to and pages audited, per browser context (see `new_context`)."""

    visited: dict[str, str] = field(default_factory=dict)  # page key -> first URL seen
    audited: set[str] = field(default_factory=set)

    def navigated(self, url: str) -> None:
        if url.startswith("http"):
            self.visited.setdefault(page_key(url), url)

    def unaudited(self) -> list[str]:
        return [url for key, url in self.visited.items() if key not in self.audited]


def _describe(violation: dict[str, Any]) -> str:
    nodes = violation.get("nodes", [])
    targets = "; ".join(" ".join(map(str, node.get("target", []))) for node in nodes[:5])
    return (
        f"[{violation.get('impact')}] {violation.get('id')}: {violation.get('help')} "
        f"({len(nodes)} element(s): {targets})"
    )


def blocking_violations(page: Any) -> list[str]:
    """Serious or critical WCAG 2.2 AA violations on the page as it is now, described."""
    results = _AXE.run(
        page,
        options={"runOnly": {"type": "tag", "values": WCAG_22_AA}, "resultTypes": ["violations"]},
    )
    violations = results.response.get("violations", [])
    return [_describe(v) for v in violations if v.get("impact") in BLOCKING_IMPACTS]


def audit(page: Any) -> None:
    """Fail on any serious or critical WCAG 2.2 AA violation on the page as it is now, and
    record the page as audited."""
    page.wait_for_load_state("load")
    problems = blocking_violations(page)
    assert not problems, f"axe found on {page.url}:\n" + "\n".join(problems)
    log: AuditLog | None = getattr(page.context, "_audit_log", None)
    if log is not None:
        log.audited.add(page_key(page.url))
