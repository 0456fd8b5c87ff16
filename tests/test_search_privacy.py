"""Searching referrals by name or NHS number never puts the identifier in a URL: the search is
POSTed (with CSRF), its results come back in the answer, and paging within it posts again.

Every URL a page carries (links, form actions, sources) and every redirect is checked for the
identifier searched for, on the GP practice list and on the link worker's caseload.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.extensions import db
from tests import factories
from tests.conftest import csrf_token
from tests.intake_helpers import make_referral, nhs_numbers

FAMILY = "Quennell"  # shared by 27 people: more than one page of results
_URL_ATTRIBUTES = re.compile(r'\b(?:href|action|src|formaction)="([^"]*)"')
_FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.DOTALL)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def urls_in(response: Any) -> list[str]:
    """Every URL the answer would make a browser ask for or show: its links and redirect."""
    found = [html.unescape(url) for url in _URL_ATTRIBUTES.findall(response.get_data(as_text=True))]
    if "Location" in response.headers:
        found.append(response.headers["Location"])
    return found


def assert_no_identifier_in_urls(response: Any, *identifiers: str) -> None:
    for url in urls_in(response):
        for identifier in identifiers:
            assert identifier.lower() not in url.lower(), f"{identifier!r} in URL {url}"


def pager_form(response: Any, label: str) -> tuple[str, list[tuple[str, str]]]:
    """The action and hidden fields of the paging form whose button says `label`."""
    for action, body in _FORM.findall(response.get_data(as_text=True)):
        if f">{label}: page" in body:
            return html.unescape(action), [(n, html.unescape(v)) for n, v in _HIDDEN.findall(body)]
    raise AssertionError(f"no {label!r} paging form")


def search(client: FlaskClient, term: str, **filters: str) -> Any:
    token = csrf_token(client, "/referrals/")
    return client.post("/referrals/", data={"q": term, **filters, "csrf_token": token})


@pytest.fixture()
def practice_with_namesakes(app: Any) -> tuple[Organisation, User, list[str]]:
    """A practice whose GP has referred 27 people called Quennell, and one other person."""
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    gp = factories.make_user(Role.REFERRER, organisation=practice)
    numbers = nhs_numbers()
    nhs = [next(numbers) for _ in range(27)]
    for n, number in enumerate(nhs):
        make_referral(gp, practice, nhs=number, given_name=f"Person{n}", family_name=FAMILY)
    make_referral(gp, practice, nhs=next(numbers), given_name="Olive", family_name="Tarrant")
    db.session.commit()
    return practice, gp, nhs


def test_a_gp_searches_by_name_and_pages_without_the_name_in_any_url(
    login_as: Callable[..., FlaskClient], practice_with_namesakes: Any
) -> None:
    _practice, gp_user, _nhs = practice_with_namesakes
    gp = login_as(gp_user)
    first = search(gp, FAMILY.lower())
    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert "27 referrals" in page and "Tarrant" not in page
    assert f'value="{FAMILY.lower()}"' in page  # the box keeps what was typed
    assert_no_identifier_in_urls(first, FAMILY)

    action, fields = pager_form(first, "Next")
    assert ("q", FAMILY.lower()) in fields
    second = gp.post(action, data=MultiDict(fields))
    assert second.status_code == 200
    assert "Showing 26 to 27 of 27" in second.get_data(as_text=True)
    assert "Tarrant" not in second.get_data(as_text=True)
    assert_no_identifier_in_urls(second, FAMILY)
    action, fields = pager_form(second, "Previous")
    assert "Showing 1 to 25 of 27" in gp.post(action, data=MultiDict(fields)).get_data(as_text=True)


def test_a_gp_searches_by_nhs_number_without_it_in_any_url(
    login_as: Callable[..., FlaskClient], practice_with_namesakes: Any
) -> None:
    _practice, gp_user, nhs = practice_with_namesakes
    gp = login_as(gp_user)
    spaced = f"{nhs[3][:3]} {nhs[3][3:6]} {nhs[3][6:]}"
    for typed in (nhs[3], spaced):
        response = search(gp, typed)
        page = response.get_data(as_text=True)
        assert "1 referral<" in page and "Person3 Quennell" in page
        assert_no_identifier_in_urls(response, nhs[3], spaced, nhs[3][:6])


def test_an_identifier_in_a_url_is_not_searched_for(
    login_as: Callable[..., FlaskClient], practice_with_namesakes: Any
) -> None:
    """An old bookmark with ?q= lists everything: no page acts on an identifier in a URL, so
    none ever links to one."""
    _practice, gp_user, nhs = practice_with_namesakes
    gp = login_as(gp_user)
    page = gp.get(f"/referrals/?q={nhs[3]}").get_data(as_text=True)
    assert "28 referrals" in page


def test_an_empty_search_goes_back_to_the_plain_list_with_its_filters(
    login_as: Callable[..., FlaskClient],
) -> None:
    worker = login_as(Role.LINK_WORKER)
    response = search(worker, "  ", status="contacting", pathway="")
    assert response.status_code == 302
    assert response.headers["Location"] == "/referrals/?status=contacting"


def test_a_search_needs_the_csrf_token(login_as: Callable[..., FlaskClient]) -> None:
    worker = login_as(Role.LINK_WORKER)
    assert worker.post("/referrals/", data={"q": "Quennell"}).status_code == 400


def test_a_link_worker_searches_the_caseload_with_filters_and_pages(
    login_as: Callable[..., FlaskClient], practice_with_namesakes: Any
) -> None:
    practice, _gp, nhs = practice_with_namesakes
    worker = login_as(Role.LINK_WORKER)
    first = search(worker, FAMILY, practice=str(practice.id), status="received")
    page = first.get_data(as_text=True)
    assert "27 referrals" in page
    assert f'<option value="{practice.id}" selected' in page
    assert_no_identifier_in_urls(first, FAMILY)

    action, fields = pager_form(first, "Next")
    assert ("practice", str(practice.id)) in fields and ("status", "received") in fields
    assert "q" not in action and FAMILY not in action
    second = worker.post(action, data=MultiDict(fields))
    assert "Showing 26 to 27 of 27" in second.get_data(as_text=True)
    assert_no_identifier_in_urls(second, FAMILY)

    by_number = search(worker, nhs[0])
    assert "1 referral<" in by_number.get_data(as_text=True)
    assert_no_identifier_in_urls(by_number, nhs[0])
    # A filter that matches none of them still keeps the identifier out of every URL.
    none = search(worker, nhs[0], status="completed")
    assert "No referrals match" in none.get_data(as_text=True)
    assert_no_identifier_in_urls(none, nhs[0])


@pytest.mark.parametrize("role", [Role.REFERRER, Role.LINK_WORKER], ids=str)
def test_control_characters_in_a_posted_search_are_ignored(
    login_as: Callable[..., FlaskClient], role: Role
) -> None:
    client = login_as(role)
    for term in ("a\x00b", "\x00", "\x01\x1b", "\x7f", "\uffff"):
        assert search(client, term).status_code in (200, 302)
