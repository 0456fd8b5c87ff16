"""Journey 2: the link worker contacts Mrs Atkins, assesses her and enrols her.

Two calls (the first with no answer, after a form sent without its outcome), the "what matters
to you" conversation, the course directory searched for singing: "Singing for Better
Breathing", starting next month, is full, so she goes on its waiting list. When someone else
is taken off the course her place comes automatically, the link worker is told in her
messages, and the message leads to the referral, now enrolled.
"""

from __future__ import annotations

import re
from datetime import date

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from referrals.auth.models import OrganisationKind, Role, User
from referrals.courses.models import Enrolment, EnrolmentStatus
from referrals.courses.services import enrol, waitlist_position
from referrals.intake.lifecycle import Status
from referrals.intake.models import ContactAttempt, Referral, ReferralTransition
from referrals.notifications.models import Notification
from referrals.vocab import (
    ArtForm,
    ContactMethod,
    ContactOutcome,
    Pathway,
)
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import london_today, screenshot, sign_in
from tests.course_helpers import assessed_referral
from tests.factories import make_contract, make_course
from tests.intake_helpers import make_referral

COURSE = "Singing for Better Breathing"
ALREADY_ENROLLED = [("Joan", "Pritchard"), ("Derek", "Hale"), ("Eileen", "Moss")]


def first_monday_of_next_month(day: date) -> date:
    first = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return date.fromordinal(first.toordinal() + (7 - first.weekday()) % 7)


def margaret_referred_by(gp: User, today: date) -> Referral:
    """Mrs Atkins' referral as her GP sent it."""
    return make_referral(
        gp,
        gp.organisation,
        nhs="9434765919",
        today=today,
        given_name="Margaret",
        family_name="Atkins",
        date_of_birth=date(1948, 3, 15),
        communication_needs="Uses a hearing aid",
        pathway=Pathway.COPD_ASTHMA,
        reason="COPD, lonely since her husband died, used to sing in a choir",
        interests=[ArtForm.SINGING, ArtForm.MUSIC],
        consent=True,
    )


def log_contact(page: Page, outcome: str, note: str) -> None:
    page.get_by_role("link", name="Log a contact attempt").click()
    expect(page.get_by_role("heading", name="Log a contact attempt", level=1)).to_be_visible()
    audit(page)
    page.get_by_role("group", name="How").get_by_label("Phone", exact=True).check()
    page.get_by_role("group", name="Outcome").get_by_label(outcome, exact=True).check()
    page.get_by_label("Note (optional)").fill(note)
    page.get_by_role("button", name="Save attempt").click()
    expect(page.get_by_role("status")).to_contain_text("Contact attempt logged")


def test_link_worker_contacts_assesses_and_waitlists_then_the_place_comes(
    page, live_data, tmp_path
):
    today = london_today()
    practice = factories.make_organisation(
        OrganisationKind.GP_PRACTICE, name="Abbey Road Surgery", ods_code="L84001"
    )
    gp = factories.make_user(Role.REFERRER, organisation=practice, name="Dr Priya Shah")
    service = factories.make_organisation(
        OrganisationKind.LINK_WORKER_SERVICE, name="Gloucester Social Prescribing"
    )
    link_worker = factories.make_user(Role.LINK_WORKER, organisation=service, name="Sam Okafor")
    colleague = factories.make_user(Role.LINK_WORKER, organisation=service, name="Ravi Patel")
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")
    choir_leader = factories.make_user(Role.ARTIST, organisation=provider, name="Maria Lopez")
    contract = make_contract(name="Gloucestershire Arts on Prescription 2026-27")
    starts = first_monday_of_next_month(today)
    singing = make_course(
        provider,
        capacity=3,
        start=starts,
        title=COURSE,
        contract=contract,
        description="Breathing exercises and songs for people living with lung conditions.",
        cost_per_session_pence=600,
        lead_artists=[choir_leader],
    )
    make_course(
        provider,
        capacity=12,
        start=starts,
        title="Watercolours for Wellbeing",
        contract=contract,
        art_form=ArtForm.VISUAL_ART,
    )
    # Every place on the singing course is taken by people the colleague has enrolled.
    others = {
        given: enrol(
            colleague,
            assessed_referral(colleague, given_name=given, family_name=family),
            singing,
            today=today,
        )
        for given, family in ALREADY_ENROLLED
    }
    margaret = margaret_referred_by(gp, today)
    live_data.commit()
    assert all(e.status is EnrolmentStatus.ENROLLED for e in others.values())

    sign_in(page, link_worker.email)

    # Her caseload: the new referrals card leads to Mrs Atkins, the only one received.
    page.get_by_role("link", name="New referrals").click()
    expect(page.get_by_role("heading", name="Caseload", level=1)).to_be_visible()
    audit(page)
    caseload = page.get_by_role("table")
    expect(caseload.get_by_role("row").filter(has_text="Margaret Atkins")).to_contain_text(
        "Abbey Road Surgery"
    )
    caseload.get_by_role("link", name="Margaret Atkins").click()
    expect(page.get_by_role("heading", name="Margaret Atkins", level=1)).to_be_visible()
    expect(page.get_by_text("Received", exact=True).first).to_be_visible()
    audit(page)

    # First call: the outcome is forgotten, and the error summary leads straight to it.
    page.get_by_role("link", name="Log a contact attempt").click()
    audit(page)
    page.get_by_role("group", name="How").get_by_label("Phone", exact=True).check()
    page.get_by_label("Note (optional)").fill("Rang at 10:05, no answerphone")
    page.get_by_role("button", name="Save attempt").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_be_visible()
    audit(page)  # the error state as well as the form
    outcome = page.get_by_role("group", name="Outcome")
    expect(outcome.get_by_role("radio").first).not_to_be_focused()
    summary.get_by_role("link", name="Select the outcome").click()
    expect(outcome.get_by_role("radio").first).to_be_focused()
    expect(page.get_by_label("Note (optional)")).to_have_value("Rang at 10:05, no answerphone")
    expect(page.get_by_role("group", name="How").get_by_label("Phone", exact=True)).to_be_checked()
    with live_data.fresh() as session:
        assert session.scalar(select(func.count()).select_from(ContactAttempt)) == 0
    outcome.get_by_label("No answer", exact=True).check()
    page.get_by_role("button", name="Save attempt").click()
    expect(page.get_by_role("status")).to_contain_text("Contact attempt logged")
    expect(page.get_by_text("Contacting", exact=True).first).to_be_visible()
    audit(page)

    # Second call reaches her.
    log_contact(page, "Spoke to them", "Keen to try a singing group; daughter can drive her")
    with live_data.fresh() as session:
        attempts = session.scalars(
            select(ContactAttempt)
            .where(ContactAttempt.referral_id == margaret.id)
            .order_by(ContactAttempt.at)
        ).all()
        assert [(a.method, a.outcome) for a in attempts] == [
            (ContactMethod.PHONE, ContactOutcome.NO_ANSWER),
            (ContactMethod.PHONE, ContactOutcome.SPOKE),
        ]
        assert attempts[0].note == "Rang at 10:05, no answerphone"
        referral = session.get(Referral, margaret.id)
        assert referral.status is Status.CONTACTING
        assert referral.assigned_to_id == link_worker.id

    # What matters to her.
    page.get_by_role("link", name="Record what matters conversation").click()
    expect(page.get_by_role("heading", name="What matters to them", level=1)).to_be_visible()
    audit(page)
    expect(page.get_by_label("Date of the conversation")).to_have_value(f"{today:%d/%m/%Y}")
    page.get_by_label("What matters to them").fill(
        "Getting out of the house and meeting people; her breathing when she walks uphill; "
        "she sang in the cathedral choir for 30 years"
    )
    page.get_by_label("Agreed next steps (optional)").fill("Find a singing group near GL1")
    page.get_by_role("group", name="Art forms they would like to try").get_by_label(
        "Singing", exact=True
    ).check()
    page.get_by_role("button", name="Save conversation").click()
    expect(page.get_by_role("status")).to_contain_text("The referral is now assessed")
    expect(page.get_by_text("she sang in the cathedral choir for 30 years")).to_be_visible()
    audit(page)

    # The directory, from her referral, searched for singing: the course is full.
    page.get_by_role("link", name="Find a course").click()
    expect(page.get_by_role("heading", name="Course directory", level=1)).to_be_visible()
    audit(page)
    page.get_by_label("Art form").select_option(label="Singing")
    page.get_by_role("button", name="Find courses").click()
    expect(page.get_by_text("1 course", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Watercolours for Wellbeing")).to_have_count(0)
    card = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=COURSE))
    expect(card.get_by_text("Full", exact=True)).to_be_visible()
    audit(page)
    card.get_by_role("link", name=COURSE).click()
    expect(page.get_by_role("heading", name=COURSE, level=1)).to_be_visible()
    places = page.locator(".nhsuk-summary-list__row").filter(has_text="Places")
    expect(places).to_contain_text("3 (0 left, 0 waiting)")
    audit(page)
    page.get_by_role("button", name="Add to the waiting list: Margaret Atkins").click()

    expect(page.get_by_role("status")).to_contain_text(
        f"{COURSE} is full. Margaret Atkins is number 1 on its waiting list"
    )
    courses = page.locator("ul").filter(has=page.get_by_role("link", name=COURSE, exact=True))
    expect(courses).to_contain_text("On the waiting list")
    expect(courses).to_contain_text("number 1 on the waiting list")
    audit(page)
    with live_data.fresh() as session:
        waiting = session.scalars(
            select(Enrolment).where(Enrolment.referral_id == margaret.id)
        ).one()
        assert waiting.status is EnrolmentStatus.WAITLISTED
        assert waitlist_position(waiting) == 1
        assert session.get(Referral, margaret.id).status is Status.WAITLISTED

    # Her place in the queue, on her enrolment and on the course's own page.
    page.get_by_role("link", name=COURSE, exact=True).click()
    expect(page.get_by_role("heading", name="Margaret Atkins", level=1)).to_be_visible()
    expect(page.get_by_text("Number 1 on the waiting list.")).to_be_visible()
    audit(page)
    page.get_by_role("navigation", name="Menu").get_by_role("link", name="Courses").click()
    audit(page)
    page.get_by_role("link", name=COURSE).click()
    waiting_list = page.get_by_role("list").filter(has_text="waiting since")
    expect(waiting_list.get_by_role("listitem")).to_have_text(
        [re.compile(r"^Margaret Atkins, waiting since ")]
    )
    audit(page)
    screenshot(page, "link-worker-waiting-list.png", tmp_path)

    # Joan Pritchard is moving away: the link worker takes her off, and the place frees up.
    page.get_by_role("table", name="People enrolled").get_by_role(
        "link", name="Joan Pritchard"
    ).click()
    expect(page.get_by_role("heading", name="Joan Pritchard", level=1)).to_be_visible()
    audit(page)
    page.get_by_role("link", name="Take them off the course").click()
    expect(
        page.get_by_role("heading", name="Take Joan Pritchard off this course", level=1)
    ).to_be_visible()
    audit(page)
    page.get_by_label("Reason").fill("Moving to Bristol to live with her daughter")
    page.get_by_role("button", name="Take them off the course").click()
    expect(page.get_by_role("status").first).to_contain_text(
        f"Joan Pritchard has been taken off {COURSE}"
    )
    expect(page.get_by_text("The place was offered to Margaret Atkins")).to_be_visible()
    audit(page)

    with live_data.fresh() as session:
        promoted = session.scalars(
            select(Enrolment).where(Enrolment.referral_id == margaret.id)
        ).one()
        # Offered, and held for her: not yet enrolled.
        assert promoted.status is EnrolmentStatus.OFFERED
        assert promoted.offer_expires_on is not None
        assert session.get(Enrolment, others["Joan"].id).status is EnrolmentStatus.WITHDRAWN
        assert session.get(Referral, margaret.id).status is Status.WAITLISTED
        assert (
            session.scalar(
                select(func.count()).where(
                    Enrolment.course_id == singing.id,
                    Enrolment.status == EnrolmentStatus.ENROLLED,
                )
            )
            == 2
        )
        told = session.scalars(
            select(Notification).where(Notification.kind == "waiting_list_offer")
        ).all()
        assert [(n.user_id, n.link) for n in told] == [
            (link_worker.id, f"/referrals/{margaret.id}")
        ]

    # The link worker is told: an unread message, which leads to Mrs Atkins' referral.
    account = page.get_by_role("navigation", name="Account")
    expect(account.get_by_role("link", name="Messages 1 unread")).to_be_visible()
    account.get_by_role("link", name="Messages 1 unread").click()
    expect(page.get_by_role("heading", name="Messages", level=1)).to_be_visible()
    offer = page.get_by_role("listitem").filter(
        has_text=f"R{margaret.id} has been offered a place on {COURSE} from the waiting list"
    )
    expect(offer).to_contain_text("New")
    audit(page)
    offer.get_by_role("button", name=re.compile("^Open")).click()

    expect(page).to_have_url(re.compile(rf"/referrals/{margaret.id}$"))
    expect(page.get_by_role("heading", name="Margaret Atkins", level=1)).to_be_visible()
    courses = page.locator("ul").filter(has=page.get_by_role("link", name=COURSE, exact=True))
    expect(courses).to_contain_text("Offered a place")
    expect(courses).to_contain_text("to accept by")
    audit(page)

    # She says yes on the phone; the link worker accepts the place for her.
    courses.get_by_role("link", name=COURSE, exact=True).click()
    page.get_by_role("button", name="Accept the place for them").click()
    expect(page.get_by_role("status").first).to_contain_text(
        f"Margaret Atkins has accepted the place on {COURSE}"
    )
    with live_data.fresh() as session:
        assert session.get(Referral, margaret.id).status is Status.ENROLLED
    page.goto(f"{page.url.split('/enrolments/')[0]}/referrals/{margaret.id}")
    expect(page.get_by_text("Enrolled", exact=True).first).to_be_visible()
    courses = page.locator("ul").filter(has=page.get_by_role("link", name=COURSE, exact=True))
    expect(courses).to_contain_text("Enrolled")
    expect(courses).not_to_contain_text("waiting list")
    timeline = page.locator(".app-timeline")
    expect(timeline).to_contain_text(f"Accepted a place on {COURSE} from the waiting list")
    expect(account.get_by_role("link", name="Messages", exact=True)).to_be_visible()  # read now
    audit(page)
    screenshot(page, "link-worker-enrolled.png", tmp_path)

    with live_data.fresh() as session:
        steps = session.scalars(
            select(ReferralTransition.to_status)
            .where(ReferralTransition.referral_id == margaret.id)
            .order_by(ReferralTransition.at, ReferralTransition.id)
        ).all()
        assert steps == [
            Status.RECEIVED,
            Status.CONTACTING,
            Status.ASSESSED,
            Status.WAITLISTED,
            Status.ENROLLED,
        ]
