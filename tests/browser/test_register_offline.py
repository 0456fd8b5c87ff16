"""Issue 18 on a phone with no signal: the choir leader opens today's register with a
connection, loses it, takes the whole register with moods and a baseline SWEMWBS, closes and
reopens the app, and the register is sent once when the connection returns; an admin's
correction in between is shown as a choice, never overwritten; signing out clears the phone."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role
from referrals.courses.models import Attendance, AttendanceStatus
from referrals.courses.register_rules import RegisterEntry
from referrals.courses.services import enrol, save_register
from referrals.outcomes.models import WellbeingAssessment
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import london_today, sign_in
from tests.course_helpers import assessed_referral
from tests.factories import make_course

PHONE = {"width": 360, "height": 740}
EMPTY = {"databases": [], "caches": [], "workers": 0}
WAITING_JS = """async () => {
  const open = indexedDB.open('aop-registers', 1)
  const db = await new Promise((ok) => { open.onsuccess = () => ok(open.result) })
  const items = await new Promise((ok) => {
    const r = db.transaction('queue').objectStore('queue').getAll()
    r.onsuccess = () => ok(r.result)
  })
  db.close()
  return items.length
}"""
STORAGE_JS = """async () => ({
  databases: (await indexedDB.databases()).map((d) => d.name),
  caches: await caches.keys(),
  workers: (await navigator.serviceWorker.getRegistrations()).length,
})"""


def storage_once_settled(page: Page) -> dict[str, object]:
    """What the browser holds for the site, once an update check of the service worker that
    signing out removed (the browser may start one as the sign-in page opens) has finished."""
    storage = page.evaluate(STORAGE_JS)
    for _ in range(50):
        if storage == EMPTY:
            break
        page.wait_for_timeout(100)
        storage = page.evaluate(STORAGE_JS)
    return storage


def take_register(page: Page) -> None:
    marks = {
        "Margaret Atkins": ("Attended", "4", "7", "Sang the whole second half"),
        "Joan Pritchard": ("Attended", "5", "8", ""),
        "Derek Hale": ("Apologies", None, None, "Hospital appointment"),
    }
    for name, (status, before, after, note) in marks.items():
        person = page.get_by_role("group", name=name, exact=True)
        person.get_by_label(status, exact=True).tap()
        if before is not None:
            person.get_by_label("Mood before").select_option(before)
            person.get_by_label("Mood after").select_option(after)
        if note:
            person.get_by_label("Note").fill(note)
    margaret = page.get_by_role("group", name="Margaret Atkins", exact=True)
    margaret.get_by_text("Record a wellbeing questionnaire: baseline").tap()
    for number, answer in enumerate([3, 4, 3, 3, 4, 3, 3], start=1):
        item = margaret.get_by_role("group", name=f"Item {number}", exact=True)
        item.get_by_label(str(answer), exact=True).tap()


def test_artist_takes_the_register_offline_and_it_arrives_once(new_context, live_data):
    day = london_today()
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")
    artist = factories.make_user(Role.ARTIST, organisation=provider, name="Maria Lopez")
    admin = factories.make_user(Role.ADMIN)
    link_worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(provider, start=day, title="Singing for Better Breathing")
    enrolments = {
        f"{given} {family}": enrol(
            link_worker,
            assessed_referral(link_worker, given_name=given, family_name=family),
            course,
            today=day,
        )
        for given, family in [("Margaret", "Atkins"), ("Joan", "Pritchard"), ("Derek", "Hale")]
    }
    live_data.commit()
    session = course.sessions[0]
    register_url = f"/sessions/{session.id}/register"
    today_text = f"{day.day} {day:%b %Y}"

    context = new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    # The server's answer to a register changed meanwhile, which the page shows as a choice.
    context.expected_console_errors.append(re.compile(r"status of 409 \(CONFLICT\)"))
    sends: list[str] = []
    context.on(
        "request",
        lambda r: sends.append(r.url) if r.method == "POST" and "/send" in r.url else None,
    )
    page = context.new_page()
    sign_in(page, artist.email)

    # Online: today's register, kept on the phone.
    page.goto(register_url)
    expect(page.get_by_text("Ready without a connection")).to_be_visible()
    audit(page)

    # No signal: the same register, from the phone.
    context.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", name=f"Register, {today_text}")).to_be_visible()
    expect(page.get_by_text("You are offline")).to_be_visible()
    expect(page.get_by_text("will be sent when the connection returns")).to_be_visible()
    audit(page)
    # The phone keeps what the register needs, and nothing clinical.
    margaret = page.get_by_role("group", name="Margaret Atkins", exact=True)
    expect(margaret.get_by_role("link", name=re.compile(r"^0"))).to_be_visible()

    # Saving with someone unmarked says so at the person, as the screen register does.
    page.get_by_role("button", name="Save register").tap()
    expect(page.get_by_role("alert")).to_contain_text("Choose attended, apologies or no show")
    audit(page)

    take_register(page)
    page.get_by_role("button", name="Save register").tap()
    expect(page.get_by_text("Register saved on this phone: 2 of 3 attended")).to_be_visible()
    waiting = page.get_by_text(
        f"Register for Singing for Better Breathing, {today_text} (3 people)"
    )
    expect(waiting).to_be_visible()
    audit(page)
    assert sends == []

    # The app closed and opened again, still with no signal: the register is still waiting.
    page.close()
    page = context.new_page()
    page.goto(register_url)
    waiting = page.get_by_text(
        f"Register for Singing for Better Breathing, {today_text} (3 people)"
    )
    expect(waiting).to_be_visible()
    margaret = page.get_by_role("group", name="Margaret Atkins", exact=True)
    expect(margaret.get_by_label("Attended", exact=True)).to_be_checked()
    expect(margaret.get_by_label("Mood after")).to_have_value("7")
    audit(page)

    # Meanwhile an admin corrects the register on the server.
    ids = {name: e.id for name, e in enrolments.items()}
    save_register(
        admin,
        session,
        [
            RegisterEntry(ids["Margaret Atkins"], AttendanceStatus.ATTENDED, 6, 6),
            RegisterEntry(ids["Joan Pritchard"], AttendanceStatus.NO_SHOW),
            RegisterEntry(ids["Derek Hale"], AttendanceStatus.APOLOGIES),
        ],
        today=day,
    )
    live_data.commit()

    # The connection returns: the register is sent, and the change is shown, not overwritten.
    context.set_offline(False)
    expect(page.get_by_role("heading", name=re.compile("changed by someone else"))).to_be_visible()
    differs = page.get_by_role("table", name="What differs")
    expect(differs.get_by_role("row").filter(has_text="Joan Pritchard")).to_contain_text("No show")
    audit(page)
    assert len(sends) == 1
    with live_data.fresh() as db_session:
        saved = {a.enrolment_id: a.status for a in db_session.scalars(select(Attendance)).all()}
    assert saved[ids["Joan Pritchard"]] is AttendanceStatus.NO_SHOW  # the admin's, kept

    page.get_by_role("button", name="Send my register instead").tap()
    expect(page.get_by_text("sent: 2 of 3 attended")).to_be_visible()
    audit(page)
    assert len(sends) == 2
    assert page.evaluate(WAITING_JS) == 0

    # Another loss and return of the connection, and the app opened again, send nothing more.
    context.set_offline(True)
    context.set_offline(False)
    page.goto(register_url)
    expect(page.get_by_text("Ready without a connection")).to_be_visible()
    audit(page)
    assert len(sends) == 2

    with live_data.fresh() as db_session:
        saved_marks = {
            a.enrolment_id: (a.status, a.mood_before, a.mood_after)
            for a in db_session.scalars(select(Attendance)).all()
        }
        questionnaires = db_session.scalars(select(WellbeingAssessment)).all()
        sent = db_session.scalars(
            select(AuditEvent).where(AuditEvent.action == "register.sent_from_device")
        ).all()
    assert saved_marks == {
        ids["Margaret Atkins"]: (AttendanceStatus.ATTENDED, 4, 7),
        ids["Joan Pritchard"]: (AttendanceStatus.ATTENDED, 5, 8),
        ids["Derek Hale"]: (AttendanceStatus.APOLOGIES, None, None),
    }
    assert [(q.enrolment_id, q.timepoint.value, q.raw_score) for q in questionnaires] == [
        (ids["Margaret Atkins"], "baseline", 23)
    ]
    assert len(sent) == 1

    # Signing out clears what the phone kept.
    assert "aop-registers" in page.evaluate(STORAGE_JS)["databases"]
    page.get_by_role("button", name="Sign out").tap()
    expect(page).to_have_url(re.compile(r"/sign-in"))
    audit(page)
    assert storage_once_settled(page) == EMPTY
