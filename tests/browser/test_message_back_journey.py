"""Journey 5: Mrs Atkins completes her singing course; the choir leader saves the last
register, and her GP practice receives the message back — attendance, wellbeing change and the
SNOMED CT code to record — in their inbox, on the referral page and as a PDF letter."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from referrals.auth.models import OrganisationKind, Role
from referrals.clock import LONDON
from referrals.courses.models import AttendanceStatus, CourseSession, Enrolment, EnrolmentStatus
from referrals.courses.services import RegisterEntry, enrol, record_wellbeing, save_register
from referrals.extensions import db
from referrals.intake.letters import LETTER_HEADING
from referrals.intake.lifecycle import SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING, Status
from referrals.intake.models import Referral
from referrals.intake.services import record_conversation
from referrals.outcomes.scoring import Instrument, Timepoint, score
from referrals.vocab import ArtForm, Pathway, Sex
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import london_today, screenshot, sign_in
from tests.factories import make_course
from tests.intake_helpers import make_referral, nhs_numbers, pdf_text

ATTENDED, APOLOGIES, NO_SHOW = (
    AttendanceStatus.ATTENDED,
    AttendanceStatus.APOLOGIES,
    AttendanceStatus.NO_SHOW,
)
# SWEMWBS answers at the first and the last session.
BASELINE_ANSWERS = [3, 3, 2, 3, 3, 2, 3]
END_ANSWERS = [4, 4, 3, 4, 4, 3, 4]


MRS_ATKINS = {
    "given_name": "Margaret",
    "family_name": "Atkins",
    "date_of_birth": date(1948, 3, 15),
    "sex": Sex.FEMALE,
    "reason": "COPD; lonely since her husband died; used to sing in a choir",
    "what_matters": "Getting out of the house, and singing again",
}
MR_HALE = {
    "given_name": "Derek",
    "family_name": "Hale",
    "date_of_birth": date(1951, 7, 2),
    "sex": Sex.MALE,
    "reason": "Breathless on the stairs; low since retiring",
    "what_matters": "Something to do on Tuesdays",
}


def at_london(day: date, clock: time) -> datetime:
    """A moment on a London wall clock, in UTC as the service stores it."""
    return datetime.combine(day, clock, tzinfo=LONDON).astimezone(UTC)


def test_the_practice_hears_that_mrs_atkins_completed_her_course(
    new_context: Any, live_data: Any, tmp_path: Path
) -> None:
    day = london_today()
    practice = factories.make_organisation(
        OrganisationKind.GP_PRACTICE, name="Abbey Road Surgery", ods_code="L84001"
    )
    gp = factories.make_user(Role.REFERRER, organisation=practice, name="Dr Priya Shah")
    link_worker = factories.make_user(Role.LINK_WORKER, name="Sam Okafor")
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")
    artist = factories.make_user(Role.ARTIST, organisation=provider, name="Maria Lopez")
    # Four weekly sessions, the last of them today.
    course = make_course(provider, start=day - timedelta(weeks=3), sessions=4)
    numbers = nhs_numbers()
    people: dict[str, Referral] = {}
    enrolments: dict[str, Enrolment] = {}
    for person in (MRS_ATKINS, MR_HALE):
        given = person["given_name"]
        referred, assessed = day - timedelta(weeks=6), day - timedelta(weeks=5)
        referral = make_referral(
            gp,
            practice,
            nhs=next(numbers),
            today=referred,
            at=at_london(referred, time(9, 40)),
            given_name=given,
            family_name=person["family_name"],
            date_of_birth=person["date_of_birth"],
            sex=person["sex"],
            pathway=Pathway.COPD_ASTHMA,
            reason=person["reason"],
            interests=[ArtForm.SINGING],
        )
        record_conversation(
            link_worker,
            referral,
            held_on=assessed,
            what_matters=person["what_matters"],
            at=at_london(assessed, time(14, 5)),
        )
        enrolments[given] = enrol(
            link_worker, referral, course, today=assessed, at=at_london(assessed, time(14, 20))
        )
        people[given] = referral
    sessions = list(
        db.session.scalars(
            select(CourseSession)
            .where(CourseSession.course_id == course.id)
            .order_by(CourseSession.date)
        )
    )
    assert [s.date for s in sessions][-1] == day
    # The first three registers, each taken on the day. Margaret sends apologies once
    # (3 of 4 attended: 75%, enough to complete); Derek misses two (2 of 4: not enough).
    marks = {"Margaret": [ATTENDED, APOLOGIES, ATTENDED], "Derek": [ATTENDED, NO_SHOW, NO_SHOW]}
    for index, session in enumerate(sessions[:3]):
        save_register(
            artist,
            session,
            [
                RegisterEntry(enrolments[name].id, statuses[index], 5, 7)
                if statuses[index] is ATTENDED
                else RegisterEntry(enrolments[name].id, statuses[index])
                for name, statuses in marks.items()
            ],
            today=session.date,
        )
    margaret = enrolments["Margaret"]
    record_wellbeing(
        artist,
        margaret,
        Instrument.SWEMWBS,
        Timepoint.BASELINE,
        BASELINE_ANSWERS,
        recorded_on=sessions[0].date,
        today=sessions[0].date,
    )
    record_wellbeing(
        artist, margaret, Instrument.SWEMWBS, Timepoint.END, END_ANSWERS, recorded_on=day, today=day
    )
    live_data.commit()
    baseline = score(Instrument.SWEMWBS, BASELINE_ANSWERS).metric
    end = score(Instrument.SWEMWBS, END_ANSWERS).metric
    wellbeing = f"{baseline:.2f} at the start, {end:.2f} at the end ({end - baseline:+.2f})"
    r_margaret, r_derek = people["Margaret"].id, people["Derek"].id

    # The choir leader takes the last register: that completes the course.
    leader = new_context().new_page()
    sign_in(leader, artist.email)
    leader.get_by_role("link", name="My sessions").click()
    expect(leader.get_by_role("heading", name="My sessions", level=1)).to_be_visible()
    audit(leader)
    today_text = f"{day.day} {day:%b %Y}"
    leader.get_by_role(
        "link", name=re.compile(rf"Singing for Better Breathing.*{today_text}.*session 4")
    ).click()
    expect(leader.get_by_role("heading", name=f"Register, {today_text}")).to_be_visible()
    audit(leader)
    for name in ("Margaret Atkins", "Derek Hale"):
        person = leader.get_by_role("group", name=name, exact=True)
        person.get_by_label("Attended", exact=True).check()
    leader.get_by_role("button", name="Save register").click()
    saved = leader.get_by_role("status")
    expect(saved.filter(has_text="Register saved")).to_contain_text("2 of 2 attended")
    expect(saved.filter(has_text="last session")).to_contain_text(
        "Margaret Atkins completed the course. Their GP practices have been sent a message back."
    )
    audit(leader)
    with live_data.fresh() as session:
        statuses = {
            r.patient.full_name: r.status
            for r in session.scalars(
                select(Referral).where(Referral.id.in_([r.id for r in people.values()]))
            )
        }
        completed = session.get(Enrolment, margaret.id)
        assert completed is not None and completed.status is EnrolmentStatus.COMPLETED
    assert statuses == {"Margaret Atkins": Status.COMPLETED, "Derek Hale": Status.STARTED}

    # At the practice: two "accepted support" messages from weeks ago, and the completion.
    page = new_context().new_page()
    sign_in(page, gp.email)
    messages = page.get_by_role("link", name=re.compile(r"^Messages\s*3\s*unread$"))
    expect(messages).to_be_visible()
    messages.click()
    expect(page.get_by_role("heading", name="Messages", level=1)).to_be_visible()
    audit(page)
    inbox = page.get_by_role("main")
    completion = inbox.get_by_role("listitem").filter(
        has_text=f"Referral R{r_margaret} completed their arts course"
    )
    expect(completion.get_by_text("New", exact=True)).to_be_visible()
    expect(completion).to_contain_text("A letter is attached; there is no code to record")
    expect(
        inbox.get_by_role("listitem").filter(has_text=f"Referral R{r_derek} completed")
    ).to_have_count(0)
    completion.get_by_role("button", name=re.compile(r"^Open")).click()

    expect(page).to_have_url(re.compile(rf"/referrals/{r_margaret}$"))
    expect(page.get_by_role("heading", name="Margaret Atkins", level=1)).to_be_visible()
    message = page.get_by_role("region", name="Message back to the practice")
    expect(message).to_contain_text(
        "Margaret Atkins has completed their arts on prescription course."
    )
    expect(message).to_contain_text("Singing for Better Breathing")
    expect(message).to_contain_text("3 of 4 sessions attended")
    expect(message).to_contain_text(wellbeing)
    # The episode's code was recorded when she accepted support: completing adds none.
    code = SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING
    expect(message).not_to_contain_text("SNOMED CT")
    courses = page.get_by_role("heading", name="Courses").locator("xpath=following-sibling::ul[1]")
    expect(courses).to_contain_text("Completed, attended 3 of 4 sessions")
    audit(page)
    page.evaluate("document.activeElement.blur()")
    screenshot(page, "message-back.png", tmp_path)

    with page.expect_download() as download:
        message.get_by_role("link", name="Download the letter (PDF)").click()
    assert download.value.suggested_filename == f"referral-R{r_margaret}-outcome.pdf"
    letter_bytes = Path(download.value.path()).read_bytes()
    assert letter_bytes.startswith(b"%PDF")
    letter = " ".join(pdf_text(letter_bytes).split())
    assert "To: Abbey Road Surgery (L84001)" in letter
    assert "Margaret Atkins has completed their arts on prescription course." in letter
    assert "Outcome Completed" in letter
    assert "Course Singing for Better Breathing" in letter
    assert "Attendance 3 of 4 sessions attended" in letter
    assert f"Wellbeing (SWEMWBS) {wellbeing}" in letter
    assert code not in letter and "Code to record" not in letter
    assert f"Date: {day.day} {day:%B %Y}" in letter

    # The same letter as a page, for any assistive technology, and printed from the browser:
    # the print stylesheet leaves only the letter.
    message.get_by_role("link", name="Read or print the letter to the practice").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(LETTER_HEADING)
    audit(page)
    shown = " ".join(page.locator("article").inner_text().split())
    printed = " ".join(pdf_text(page.pdf(format="A4")).split())
    for line in (
        "To: Abbey Road Surgery (L84001)",
        "Margaret Atkins has completed their arts on prescription course.",
        "Course Singing for Better Breathing",
        "Attendance 3 of 4 sessions attended",
        f"Wellbeing (SWEMWBS) {wellbeing}",
    ):
        assert line in letter and line in shown and line in printed, line
    for furniture in ("Back to referral", "Download this letter", "Sign out", "Two-step"):
        assert furniture not in printed, furniture
    page.go_back()

    # Opening the message marked it read.
    page.get_by_role("link", name=re.compile(r"^Messages\s*2\s*unread$")).click()
    expect(completion.get_by_text("Read", exact=True)).to_be_visible()
    expect(inbox.get_by_text("New", exact=True)).to_have_count(2)
