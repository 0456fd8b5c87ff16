"""Helpers for the browser journeys: signing in through the real form, and checking what a
keyboard or small-screen user would notice (focus indicators, horizontal scrolling)."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from referrals import clock
from tests.browser.accessibility import audit
from tests.factories import TEST_PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def london_today() -> date:
    """The service's 'today' (the views use London time, not the machine's zone)."""
    return clock.today()


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A full-page screenshot into the test's tmp_path; with UPDATE_SCREENSHOTS=1 into
    docs/screenshots/ instead (the README's pictures), so a plain test run changes no file."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, email: str, password: str = TEST_PASSWORD) -> None:
    """Sign in with the form as a person would, by its visible labels, and wait to be in;
    both the sign-in page and the page it leads to are checked with axe."""
    page.goto("/sign-in")
    audit(page)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/sign-in"))
    audit(page)


# The style that shows focus on an element. NHS.UK radios and checkboxes hide the real input
# (opacity 0) and draw the focus ring on the label's ::before circle or box, so for those the
# label's pseudo-element is what has to show it.
_FOCUS_STYLE_JS = """
(el) => {
  let drawn = el, pseudo = null;
  if ((el.type === 'radio' || el.type === 'checkbox') && el.labels && el.labels[0]) {
    drawn = el.labels[0];
    pseudo = '::before';
  }
  const s = getComputedStyle(drawn, pseudo);
  const name = (el.labels && el.labels[0] ? el.labels[0].innerText
    : el.getAttribute('aria-label') || el.innerText || el.name || '').trim();
  const transparent = (c) => c === 'transparent' || /rgba\\(.*,\\s*0\\)$/.test(c);
  return {
    tag: el.tagName.toLowerCase(),
    name: name.replace(/\\s+/g, ' ').slice(0, 80),
    drawnOn: pseudo ? 'label::before' : 'element',
    outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
      && !transparent(s.outlineColor) ? `${s.outlineWidth} ${s.outlineStyle} ${s.outlineColor}`
      : 'none',
    boxShadow: s.boxShadow,
    background: s.backgroundColor,
  };
}
"""


class KeyboardUser:
    """Drives a page with `page.keyboard` only, checking at every stop that the focused
    element shows a focus indicator: a visible outline or a box-shadow (WCAG 2.4.7), and that
    the indicator goes when focus moves on (so it is the focus style, not the resting one)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.stops: list[dict[str, Any]] = []
        self._handle: Any = None
        self._focused_style: dict[str, Any] | None = None

    def check(self, expected_name: str | None = None) -> dict[str, Any]:
        """Check the element that has focus now (and the one that had it before)."""
        handle = self.page.evaluate_handle("document.activeElement")
        style = self.page.evaluate(_FOCUS_STYLE_JS, handle)
        if self._handle is not None and self._focused_style is not None:
            resting = self.page.evaluate(_FOCUS_STYLE_JS, self._handle)
            assert resting != self._focused_style, (
                f"{self._focused_style['name']!r} looks the same with and without focus: {resting}"
            )
        assert style["tag"] != "body", "focus was lost to the page body"
        if expected_name is not None:
            assert expected_name.lower() in style["name"].lower(), (
                f"expected focus on {expected_name!r}, but it is on {style}"
            )
        assert style["outline"] != "none" or style["boxShadow"] != "none", (
            f"no visible focus indicator on {style}"
        )
        self._handle, self._focused_style = handle, style
        self.stops.append(style)
        return style

    def tab(self, expected_name: str | None = None) -> dict[str, Any]:
        self.page.keyboard.press("Tab")
        return self.check(expected_name)

    def press(self, key: str, expected_name: str | None = None) -> dict[str, Any]:
        """A key that moves focus within a control (arrow keys in a radio group)."""
        self.page.keyboard.press(key)
        return self.check(expected_name)

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)

    def space(self) -> None:
        self.page.keyboard.press("Space")


def page_scroll_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def wider_than(page: Page, width: int) -> list[str]:
    """Elements whose right edge passes `width`: what to fix when the page scrolls sideways."""
    return page.evaluate(
        """(width) => [...document.querySelectorAll('body *')]
             .filter((el) => el.getBoundingClientRect().right > width + 0.5)
             .slice(0, 10)
             .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`
                          + ` right=${Math.round(el.getBoundingClientRect().right)}`)""",
        width,
    )
