"""Anyone finds a course by postcode on the public finder and refers themselves with the
keyboard alone; the request reaches the link worker's caseload. Every public page is axe-clean."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from referrals import clock
from referrals.auth.models import OrganisationKind, Role
from referrals.intake.models import Referral
from referrals.places.services import load_places
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import KeyboardUser, screenshot, sign_in
from tests.factories import make_course, make_venue

POSTCODES = Path(__file__).resolve().parents[1] / "data" / "postcodes.csv"


def test_a_person_finds_a_course_by_postcode_and_refers_themselves_by_keyboard(
    page: Page, live_data, tmp_path
):
    with POSTCODES.open(encoding="utf-8") as stream:
        load_places(stream)
    factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Quayside Surgery")
    worker = factories.make_user(Role.LINK_WORKER, name="Sam Link")
    make_course(
        title="Harbour Voices Choir",
        venue=make_venue(name="Riverside Arts Studio", postcode="GL1 2LG"),
        start=clock.today() + timedelta(days=2),
    )
    make_course(
        title="Forest Painting Group",
        venue=make_venue(name="Deanbury Hall", postcode="GL16 8HB"),
        start=clock.today() + timedelta(days=2),
    )
    live_data.commit()

    page.goto("/find/")
    expect(page.get_by_role("heading", name="Find an arts course")).to_be_visible()
    audit(page)
    page.get_by_label("Postcode or area").focus()
    keys = KeyboardUser(page)
    keys.check("Postcode or area")
    keys.type("gl1 2ab")
    keys.tab("Distance")
    keys.type("Within 5")  # type-ahead on a closed select
    expect(page.get_by_label("Distance")).to_have_value("5")
    keys.tab("Day")
    keys.tab("Kind of activity")
    keys.tab("Designed for")
    keys.tab("Find courses")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"postcode=gl1"))

    results = page.get_by_role("list", name=re.compile("course"))
    expect(results.get_by_role("link", name="Harbour Voices Choir")).to_be_visible()
    expect(page.get_by_text("Forest Painting Group")).to_have_count(0)
    audit(page)

    page.get_by_role("link", name="Harbour Voices Choir").focus()
    keys = KeyboardUser(page)  # a new page: focus is followed afresh
    keys.check("Harbour Voices Choir")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Harbour Voices Choir")).to_be_visible()
    audit(page)
    page.get_by_role("link", name="Refer yourself to this course").focus()
    keys = KeyboardUser(page)
    keys.check("Refer yourself")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Refer yourself")).to_be_visible()
    audit(page)

    page.get_by_label("First name").focus()
    keys = KeyboardUser(page)
    keys.check("First name")
    keys.type("Ada")
    keys.tab("Last name")
    keys.type("Quillfeather")
    keys.tab("Date of birth")
    keys.type("15 3 1948")
    keys.tab("NHS number")
    keys.tab("Postcode")
    keys.type("GL1 2AB")
    keys.tab("Your GP practice")
    keys.type("Quayside")
    keys.tab("Phone number")
    keys.type("01632 960 001")
    keys.tab("Email address")
    keys.tab("Phone")  # chosen already
    keys.tab("What do you hope to get from joining")
    keys.type("I used to sing and I miss it")
    keys.tab("Is it mainly about one of these")
    keys.tab("Anything that would help you take part")
    keys.tab("I agree")
    keys.space()
    keys.tab("Send")
    screenshot(page, "self-referral.png", tmp_path)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Thank you, we have your request")).to_be_visible()
    audit(page)
    with live_data.fresh() as session:
        referral = session.scalars(select(Referral)).one()
        assert referral.referrer_type.value == "self"
        assert referral.course_of_interest.title == "Harbour Voices Choir"

    sign_in(page, worker.email)
    page.goto("/referrals/")
    expect(page.get_by_role("link", name=re.compile("Ada Quillfeather"))).to_be_visible()
    audit(page)


def test_the_public_pages_with_their_errors_are_axe_clean(page: Page, live_data):
    factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Quayside Surgery")
    live_data.commit()
    page.goto("/find/?postcode=nowhere")
    expect(page.get_by_text("There is a problem")).to_be_visible()
    audit(page)
    page.goto("/find/refer-yourself")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("There is a problem")).to_be_visible()
    expect(page.get_by_role("link", name="Enter your first name")).to_be_visible()
    audit(page)
