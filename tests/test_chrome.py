"""The NHS.UK header is rendered once per shape and filled in per request (referrals.chrome):
each person sees their own name, escaped, their own unread count and their own CSRF token."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.notifications.services import notify

_TOKENS = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_each_person_sees_their_own_name_count_and_token(app: Flask, login_as: Any) -> None:
    first = login_as(Role.REFERRER, name='<b>"Ann" & Co</b>')
    second = login_as(Role.REFERRER, name="Bea Smith")
    for _ in range(3):
        notify(text="Hello", user=second.user)
    db.session.commit()

    page_a = first.get("/").get_data(as_text=True)
    page_b = second.get("/").get_data(as_text=True)  # the same shape but for the count

    assert "&lt;b&gt;&#34;Ann&#34; &amp; Co&lt;/b&gt; (Referrer)" in page_a
    assert '<b>"Ann"' not in page_a
    assert "Bea Smith (Referrer)" in page_b and "Ann" not in page_b
    assert "app-count" not in page_a
    assert '<span class="app-count">3<span class="nhsuk-u-visually-hidden"> unread' in page_b
    assert "app-chrome-placeholder" not in page_a + page_b
    tokens_a, tokens_b = set(_TOKENS.findall(page_a)), set(_TOKENS.findall(page_b))
    assert len(tokens_a) == 1 and len(tokens_b) == 1 and tokens_a != tokens_b


def test_the_header_follows_the_page_and_the_role(app: Flask, login_as: Any) -> None:
    referrer = login_as(Role.REFERRER)
    home = referrer.get("/").get_data(as_text=True)
    referrals = referrer.get("/referrals/").get_data(as_text=True)
    current = 'aria-current="page"><strong class="nhsuk-header__navigation-item-current-fallback">'
    assert current + "Home</strong>" in home
    assert current + "Referrals</strong>" in referrals
    artist = login_as(Role.ARTIST).get("/").get_data(as_text=True)
    assert "(Artist)" in artist and "Refer someone" not in artist
    signed_out = app.test_client().get("/sign-in").get_data(as_text=True)
    assert "Sign out" not in signed_out and "nhsuk-footer" in signed_out


def test_the_pager_is_the_frontend_macros_output_with_its_values_escaped(app: Flask) -> None:
    """`chrome_pager` answers what the frontend's pagination macro would, for each shape."""
    from flask import render_template_string

    from referrals import chrome

    macro = (
        '{% from "nhsuk/components/pagination/macro.jinja" import pagination %}{{ pagination({'
        '"previous": {"href": p[0], "labelText": p[1]} if p else undefined,'
        '"next": {"href": n[0], "labelText": n[1]} if n else undefined}) }}'
    )
    cases = [
        (None, ("/referrals/?page=2", "Page 2 of 9")),
        (("/referrals/?page=1&status=open&x=<\"'>", "Page 1 of 9"), ("/referrals/?page=3", "<3>")),
        (("/referrals/?page=8", "Page 8 of 9"), None),
    ]
    with app.test_request_context("/referrals/"):
        for previous, following in cases:
            expected = render_template_string(macro, p=previous, n=following)
            assert str(chrome.pager(previous, following)) == expected
            assert str(chrome.pager(previous, following)) == expected  # kept, filled again
