"""Journey 3 with the keyboard alone: the choir leader, on a tablet with a keyboard, skips to
the register, marks each person and their moods, and saves, with focus visible at every stop."""

from __future__ import annotations

from playwright.sync_api import expect

from referrals.auth.models import OrganisationKind, Role
from referrals.courses.models import Attendance, AttendanceStatus
from referrals.courses.services import enrol
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import KeyboardUser, london_today, sign_in
from tests.course_helpers import assessed_referral
from tests.factories import make_course

TABLET = {"width": 1024, "height": 768}


def test_artist_takes_the_register_with_the_keyboard_alone(new_context, live_data):
    day = london_today()
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")
    artist = factories.make_user(Role.ARTIST, organisation=provider, name="Maria Lopez")
    link_worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(provider, start=day, title="Singing for Better Breathing")
    for given, family in [("Margaret", "Atkins"), ("Derek", "Hale")]:
        referral = assessed_referral(link_worker, given_name=given, family_name=family)
        referral.patient.phone = None  # no telephone link between the person's controls
        enrol(link_worker, referral, course, today=day)
    live_data.commit()
    session = course.sessions[0]

    page = new_context(viewport=TABLET).new_page()
    sign_in(page, artist.email)
    page.goto(f"/sessions/{session.id}/register")
    audit(page)

    keys = KeyboardUser(page)
    keys.tab("Skip to main content")
    page.keyboard.press("Enter")
    keys.tab("Print a paper register")
    keys.tab("download it as a PDF")
    keys.tab("Upload a completed register")

    # Margaret came: no status chosen yet, so Tab lands on the first option, Space picks it.
    keys.tab("Attended")
    keys.space()
    keys.tab("Mood before")
    keys.type("4")  # type-ahead on a closed select chooses the matching option
    keys.tab("Mood after")
    keys.type("7")
    keys.tab("Note")
    keys.type("Sang the whole of the second half")
    keys.tab("Record a wellbeing questionnaire")

    # Derek sent apologies: arrows move along the options and choose.
    keys.tab("Attended")
    keys.press("ArrowRight", "Apologies")
    keys.tab("Mood before")
    keys.tab("Mood after")
    keys.tab("Note")
    keys.tab("Record a wellbeing questionnaire")
    keys.tab("Save register")
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_contain_text("Register saved: 1 of 2 attended")
    audit(page)
    with live_data.fresh() as db_session:
        saved = {
            a.enrolment.referral.patient.full_name: (a.status, a.mood_before, a.mood_after, a.note)
            for a in db_session.query(Attendance)
        }
    assert saved == {
        "Margaret Atkins": (
            AttendanceStatus.ATTENDED,
            4,
            7,
            "Sang the whole of the second half",
        ),
        "Derek Hale": (AttendanceStatus.APOLOGIES, None, None, ""),
    }
