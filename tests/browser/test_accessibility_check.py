"""The axe check the journeys rely on does catch what it claims to: a page with an unlabelled
input and an image without alternative text fails it, and an unaudited visit is noticed."""

from __future__ import annotations

import pytest

from tests.browser.accessibility import AuditLog, audit, blocking_violations, page_key


def test_axe_reports_serious_violations(page):
    page.set_content(
        "<!doctype html><html lang='en'><head><title>Bad page</title></head><body><main>"
        "<h1>Bad page</h1><img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>"
        "<input type='text' name='nhs'></main></body></html>"
    )
    problems = blocking_violations(page)
    assert any("image-alt" in problem for problem in problems), problems
    assert any(problem.startswith("[critical] label") for problem in problems), problems
    with pytest.raises(AssertionError, match="image-alt"):
        audit(page)


def test_a_visited_page_that_was_never_audited_is_listed():
    log = AuditLog()
    log.navigated("http://127.0.0.1:5000/referrals/12")
    log.navigated("http://127.0.0.1:5000/referrals/13?tab=timeline")
    log.navigated("http://127.0.0.1:5000/courses")
    log.audited.add(page_key("http://127.0.0.1:5000/referrals/99"))
    assert log.unaudited() == ["http://127.0.0.1:5000/courses"]
