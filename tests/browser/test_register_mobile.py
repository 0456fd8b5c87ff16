"""Journey 3 on a phone: the choir leader takes today's register and records a baseline
SWEMWBS, on a 360×740 touch screen, finding everything by its visible label."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from referrals.auth.models import OrganisationKind, Role
from referrals.courses.models import Attendance, AttendanceStatus
from referrals.courses.services import enrol
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import (
    london_today,
    page_scroll_width,
    screenshot,
    sign_in,
    wider_than,
)
from tests.course_helpers import assessed_referral
from tests.factories import make_course

PHONE = {"width": 360, "height": 740}
MIN_TARGET_PX = 44  # WCAG 2.5.5 / NHS.UK: touch targets at least 44 by 44 CSS pixels


def assert_no_sideways_scrolling(page: Page) -> None:
    width = page_scroll_width(page)
    assert width <= PHONE["width"], (
        f"{page.url} scrolls sideways at {PHONE['width']} px (scrollWidth {width}); "
        f"too wide: {wider_than(page, PHONE['width'])}"
    )


def test_artist_takes_the_register_and_a_baseline_on_a_phone(new_context, live_data, tmp_path):
    day = london_today()
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")
    artist = factories.make_user(Role.ARTIST, organisation=provider, name="Maria Lopez")
    link_worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(provider, start=day, title="Singing for Better Breathing")
    people = [("Margaret", "Atkins"), ("Joan", "Pritchard"), ("Derek", "Hale")]
    enrolments = {
        f"{given} {family}": enrol(
            link_worker,
            assessed_referral(link_worker, given_name=given, family_name=family),
            course,
            today=day,
        )
        for given, family in people
    }
    live_data.commit()

    context = new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    sign_in(page, artist.email)

    page.get_by_role("link", name="My sessions").tap()
    expect(page.get_by_role("heading", name="My sessions", level=1)).to_be_visible()
    audit(page)
    today_text = f"{day.day} {day:%b %Y}"
    todays_session = page.get_by_role(
        "link", name=re.compile(rf"Singing for Better Breathing.*{today_text}.*session 1")
    )
    todays_session.tap()
    expect(page.get_by_role("heading", name=f"Register, {today_text}")).to_be_visible()
    audit(page)

    marks = {
        "Margaret Atkins": ("Attended", "4", "7"),
        "Joan Pritchard": ("Attended", "5", "8"),
        "Derek Hale": ("Apologies", None, None),
    }
    for name, (status, before, after) in marks.items():
        person = page.get_by_role("group", name=name, exact=True)
        person.get_by_label(status, exact=True).tap()
        expect(person.get_by_label(status, exact=True)).to_be_checked()
        if before is not None:
            person.get_by_label("Mood before").select_option(before)
            person.get_by_label("Mood after").select_option(after)

    assert_no_sideways_scrolling(page)
    save = page.get_by_role("button", name="Save register")
    expect(save).to_be_visible()
    expect(save).to_be_in_viewport()  # it sticks to the bottom of the screen while marking
    box = save.bounding_box()
    assert box is not None and box["height"] >= MIN_TARGET_PX, f"Save register is {box}"
    page.evaluate("document.activeElement.blur()")  # no focus ring in the README's picture
    screenshot(page, "register-mobile.png", tmp_path)

    save.tap()
    expect(page.get_by_role("status")).to_contain_text("Register saved: 2 of 3 attended")
    audit(page)
    with live_data.fresh() as session:
        saved = {
            a.enrolment.referral.patient.full_name: (a.status, a.mood_before, a.mood_after)
            for a in session.query(Attendance)
        }
    assert saved == {
        "Margaret Atkins": (AttendanceStatus.ATTENDED, 4, 7),
        "Joan Pritchard": (AttendanceStatus.ATTENDED, 5, 8),
        "Derek Hale": (AttendanceStatus.APOLOGIES, None, None),
    }

    # Back to the register (still open today) for Margaret's questionnaire at the first session.
    todays_session.tap()
    margaret = page.get_by_role("group", name="Margaret Atkins", exact=True)
    expect(margaret.get_by_label("Attended", exact=True)).to_be_checked()
    expect(margaret.get_by_label("Mood after")).to_have_value("7")
    margaret.get_by_role("link", name="Record a wellbeing questionnaire").tap()

    expect(page.get_by_role("heading", level=1)).to_contain_text("SWEMWBS")
    when = page.get_by_role("group", name="When is this?")
    expect(when.get_by_label("Baseline (start of course)")).to_be_checked()
    audit(page)
    answers = [3, 4, 3, 3, 4, 3, 3]  # raw 23, metric 20.73 in the published conversion table
    for number, answer in enumerate(answers, start=1):
        item = page.get_by_role("group", name=f"Item {number}", exact=True)
        item.get_by_label(str(answer), exact=True).tap()
    assert_no_sideways_scrolling(page)
    page.get_by_role("button", name="Save questionnaire").tap()

    expect(page.get_by_role("status")).to_contain_text("SWEMWBS recorded: score 20.73")
    expect(page.get_by_role("heading", name="Margaret Atkins", level=1)).to_be_visible()
    questionnaires = page.get_by_role("table", name="Questionnaires")
    row = questionnaires.get_by_role("row").filter(has_text="Baseline")
    expect(row).to_contain_text("SWEMWBS")
    expect(row).to_contain_text("20.73 (raw 23)")
    expect(page).to_have_url(re.compile(rf"/enrolments/{enrolments['Margaret Atkins'].id}$"))
    audit(page)
