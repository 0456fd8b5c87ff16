"""Journey 1 with the keyboard alone: a GP refers Mrs Atkins without touching the mouse,
seeing where focus is at every step; a second referral for her is stopped with a link to the
first."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from referrals.auth.models import OrganisationKind, Role
from referrals.intake.models import Referral
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import KeyboardUser, screenshot, sign_in

NHS_NUMBER = "943 476 5919"
INTERESTS = ["Singing", "Music making"]
OTHER_INTERESTS = [
    "Painting and drawing",
    "Crafts and textiles",
    "Dance and movement",
    "Drama",
    "Creative writing",
    "Photography and film",
    "Museums and heritage",
]


def open_referral_form(page: Page) -> None:
    page.get_by_role("navigation", name="Menu").get_by_role("link", name="Refer someone").click()
    expect(page.get_by_role("heading", name="Refer someone to an arts course")).to_be_visible()
    audit(page)


def test_gp_refers_with_the_keyboard_alone(page, live_data, tmp_path):
    practice = factories.make_organisation(
        OrganisationKind.GP_PRACTICE, name="Abbey Road Surgery", ods_code="L84001"
    )
    gp = factories.make_user(Role.REFERRER, organisation=practice, name="Dr Priya Shah")
    live_data.commit()
    sign_in(page, gp.email)
    open_referral_form(page)

    # The one pointer-free shortcut: start in the first field, as a skip to it would.
    page.get_by_label("NHS number").focus()
    keys = KeyboardUser(page)
    keys.check("NHS number")
    keys.type(NHS_NUMBER)
    keys.tab("Find")
    keys.tab("First name")
    keys.type("Margaret")
    keys.tab("Last name")
    keys.type("Atkins")
    keys.tab("Date of birth")
    keys.type("15/3/1948")

    # Sex: nothing chosen yet, so Tab lands on the first option; arrows move and choose.
    keys.tab("Female")
    keys.space()
    expect(page.get_by_role("radio", name="Female", exact=True)).to_be_checked()
    keys.press("ArrowRight", "Male")
    expect(page.get_by_role("radio", name="Male", exact=True)).to_be_checked()
    keys.press("ArrowLeft", "Female")
    expect(page.get_by_role("radio", name="Female", exact=True)).to_be_checked()

    keys.tab("Ethnic group")
    keys.type("White")  # type-ahead on a closed select chooses the matching option
    expect(page.get_by_label("Ethnic group")).to_have_value("white")
    keys.tab("Postcode")
    keys.type("gl1 2ab")
    keys.tab("Phone number")
    keys.type("01632 960001")
    keys.tab("Email address")

    # Preferred contact: Phone is chosen already, so Tab lands on it; two arrows to texts.
    keys.tab("Phone")
    keys.press("ArrowRight", "Email")
    keys.press("ArrowRight", "Text message")
    expect(page.get_by_role("radio", name="Text message", exact=True)).to_be_checked()

    keys.tab("Communication needs")
    keys.type("Uses a hearing aid")
    keys.tab("Access needs")
    keys.tab("GP")  # who is referring: GP, chosen already for a GP's account
    expect(page.get_by_role("radio", name="GP", exact=True)).to_be_checked()
    keys.tab("Pathway")
    keys.type("COPD")
    expect(page.get_by_label("Pathway")).to_have_value("copd_asthma")
    keys.tab("Reason for referral")
    keys.type("COPD, lonely since her husband died, used to sing in a choir")

    for interest in INTERESTS:
        keys.tab(interest)
        keys.space()
    for interest in OTHER_INTERESTS:
        keys.tab(interest)
    keys.tab("There is a safeguarding concern")
    keys.tab("Describe the concern or risk")
    keys.tab("Date received")
    keys.tab("The person agrees to be referred")
    keys.space()
    expect(page.get_by_role("checkbox", name=re.compile("The person agrees"))).to_be_checked()
    keys.tab("Send referral")

    screenshot(page, "referral-form.png", tmp_path)
    page.keyboard.press("Enter")

    message = page.get_by_role("status").filter(has_text="Referral R")
    expect(message).to_have_text(re.compile(r"Referral R\d+ sent for Margaret Atkins"))
    referral_id = int(re.search(r"Referral R(\d+)", message.inner_text()).group(1))
    expect(page).to_have_url(re.compile(rf"/referrals/{referral_id}$"))
    audit(page)
    with live_data.fresh() as session:
        referral = session.get(Referral, referral_id)
        assert referral.patient.nhs_number == NHS_NUMBER.replace(" ", "")
        assert referral.patient.preferred_contact.value == "text"
        assert referral.pathway.value == "copd_asthma" and referral.consent is True
        assert sorted(referral.interests) == ["music", "singing"]

    # A second referral for the same NHS number is stopped, pointing to the first.
    open_referral_form(page)
    page.get_by_label("NHS number").fill(NHS_NUMBER)
    page.get_by_label("First name").fill("Margaret")
    page.get_by_label("Last name").fill("Atkins")
    page.get_by_label("Date of birth").fill("15/3/1948")
    page.get_by_role("group", name="Sex").get_by_label("Female").check()
    page.get_by_label("Ethnic group").select_option(label="White")
    page.get_by_label("Postcode").fill("GL1 2AB")
    page.get_by_label("Phone number").fill("01632 960001")
    page.get_by_label("Pathway").select_option(label="Social isolation")
    page.get_by_label("Reason for referral").fill("Referred again by mistake")
    page.get_by_label("The person agrees to be referred").check()
    page.get_by_role("button", name="Send referral").click()

    expect(page.get_by_text("There is a problem")).to_be_visible()
    expect(page.get_by_text("This person already has an open referral").first).to_be_visible()
    first = page.get_by_role("link", name=f"Open referral R{referral_id}")
    expect(first).to_be_visible()
    audit(page)  # the error summary as well as the form
    with live_data.fresh() as session:
        assert session.scalars(select(Referral.id)).all() == [referral_id]
    first.click()
    expect(page).to_have_url(re.compile(rf"/referrals/{referral_id}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Margaret Atkins")
