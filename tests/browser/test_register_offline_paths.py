"""The offline register's harder paths, in Chromium: questionnaires taken without a connection
arrive whichever register the artist keeps; a register saved as the connection drops (or when
the server fails, or the answer is lost half-way) is kept on the phone and arrives once; what the
phone keeps holds nothing clinical and goes when the sign-in ends or the artist leaves the
course; and the offline register can be taken with the keyboard alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role, UserSession
from referrals.courses.models import Attendance, AttendanceStatus, Course
from referrals.courses.register_rules import RegisterEntry
from referrals.courses.services import cancel_session, enrol, save_register
from referrals.outcomes.models import WellbeingAssessment
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import KeyboardUser, london_today, sign_in
from tests.browser.test_register_offline import PHONE, STORAGE_JS, WAITING_JS
from tests.course_helpers import assessed_referral, from_start
from tests.factories import make_course

SWEMWBS = [3, 4, 3, 3, 4, 3, 3]  # raw score 23
# Everything the site keeps in the browser, as text: IndexedDB's records and Cache Storage's
# responses.
DEVICE_JS = """async () => {
  const kept = {}
  for (const { name } of await indexedDB.databases()) {
    const opening = indexedDB.open(name)
    const db = await new Promise((ok) => { opening.onsuccess = () => ok(opening.result) })
    for (const store of db.objectStoreNames) {
      kept[`${name}/${store}`] = await new Promise((ok) => {
        const r = db.transaction(store).objectStore(store).getAll()
        r.onsuccess = () => ok(r.result)
      })
    }
    db.close()
  }
  for (const name of await caches.keys()) {
    const cache = await caches.open(name)
    for (const request of await cache.keys()) {
      kept[request.url] = await (await cache.match(request)).text()
    }
  }
  return JSON.stringify(kept)
}"""
KEPT_JS = """async () => {
  if (!(await indexedDB.databases()).some((d) => d.name === 'aop-registers')) return null
  const open = indexedDB.open('aop-registers', 1)
  const db = await new Promise((ok) => { open.onsuccess = () => ok(open.result) })
  const kept = await new Promise((ok) => {
    const r = db.transaction('kept').objectStore('kept').get('registers')
    r.onsuccess = () => ok(r.result || null)
  })
  db.close()
  return kept
}"""


@dataclass
class Choir:
    artist: Any
    admin: Any
    courses: list[Course]
    people: dict[str, Any]  # full name -> enrolment

    def register_url(self, n: int = 0) -> str:
        return f"/sessions/{self.courses[n].sessions[0].id}/register"


def choir(
    live_data: Any,
    day: date,
    titles: tuple[str, ...] = ("Singing for Breath",),
    *,
    start: date | None = None,
) -> Choir:
    """An artist's courses starting today (or `start`), with Margaret and Joan on the first and
    Derek on any other, each on the course from its first session."""
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")
    artist = factories.make_user(Role.ARTIST, organisation=provider, name="Maria Lopez")
    link_worker = factories.make_user(Role.LINK_WORKER)
    courses = [make_course(provider, start=start or day, title=title) for title in titles]
    for course in courses:
        course.lead_artists = [artist]
    names = [[("Margaret", "Atkins"), ("Joan", "Pritchard")], [("Derek", "Hale")]]
    people = {}
    for course, on_course in zip(courses, names, strict=False):
        for given, family in on_course:
            referral = assessed_referral(link_worker, given_name=given, family_name=family)
            referral.reason = "Breathless since long COVID; low mood after bereavement"
            referral.risk_flag = True
            referral.risk_note = "Has spoken of self-harm; GP aware"
            enrolment = enrol(link_worker, referral, course, today=day)
            enrolment.enrolled_at = from_start(course)
            people[f"{given} {family}"] = enrolment
    live_data.commit()
    return Choir(artist, factories.make_user(Role.ADMIN), courses, people)


def phone(new_context: Any, *, conflicts: bool = False) -> Any:
    context = new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    if conflicts:  # Chromium logs the conflict's 409, which the page shows as a choice
        context.expected_console_errors.append(re.compile(r"status of 409 \(CONFLICT\)"))
    return context


def sends_of(context: Any) -> list[str]:
    sends: list[str] = []
    context.on(
        "request",
        lambda r: sends.append(r.url) if r.method == "POST" and "/send" in r.url else None,
    )
    return sends


def kept_online(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_text("Ready without a connection")).to_be_visible()
    audit(page)


def mark(page: Page, name: str, status: str, *, moods: tuple[str, str] | None = None) -> None:
    person = page.get_by_role("group", name=name, exact=True)
    person.get_by_label(status, exact=True).check()
    if moods:
        person.get_by_label("Mood before").select_option(moods[0])
        person.get_by_label("Mood after").select_option(moods[1])


def answer_questionnaire(page: Page, name: str) -> None:
    person = page.get_by_role("group", name=name, exact=True)
    person.get_by_text("Record a wellbeing questionnaire: baseline").click()
    for number, answer in enumerate(SWEMWBS, start=1):
        item = person.get_by_role("group", name=f"Item {number}", exact=True)
        item.get_by_label(str(answer), exact=True).check()


def saved_on_server(live_data: Any) -> tuple[dict[int, Any], list[tuple[int, str, int]], int]:
    """Marks by enrolment, questionnaires, and how many sends from a phone were recorded."""
    with live_data.fresh() as db_session:
        marks = {
            a.enrolment_id: (a.status, a.mood_before, a.mood_after)
            for a in db_session.scalars(select(Attendance))
        }
        questionnaires = [
            (q.enrolment_id, q.timepoint.value, q.raw_score)
            for q in db_session.scalars(select(WellbeingAssessment).order_by("id"))
        ]
        sent = db_session.scalar(
            select(func.count()).where(AuditEvent.action == "register.sent_from_device")
        )
    return marks, questionnaires, sent


def test_questionnaires_taken_offline_arrive_whichever_register_is_kept(new_context, live_data):
    day = london_today()
    group = choir(live_data, day, ("Singing for Breath", "Clay Together"))
    context = phone(new_context, conflicts=True)
    sends = sends_of(context)
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, group.register_url(0))

    context.set_offline(True)
    for n, (marks, answering) in enumerate(
        [
            ({"Margaret Atkins": "Attended", "Joan Pritchard": "No show"}, "Margaret Atkins"),
            ({"Derek Hale": "Attended"}, "Derek Hale"),
        ]
    ):
        page.goto(group.register_url(n))
        for name, status in marks.items():
            mark(page, name, status, moods=("4", "6") if status == "Attended" else None)
        answer_questionnaire(page, answering)
        page.get_by_role("button", name="Save register").click()
        expect(page.get_by_text("Register saved on this phone")).to_be_visible()
        audit(page)
    assert page.evaluate(WAITING_JS) == 2

    # Meanwhile an admin saves Clay Together's register: Derek, they say, did not come.
    derek = group.people["Derek Hale"].id
    save_register(
        group.admin,
        group.courses[1].sessions[0],
        [RegisterEntry(derek, AttendanceStatus.NO_SHOW)],
        today=day,
    )
    live_data.commit()

    context.set_offline(False)
    expect(page.get_by_role("heading", name=re.compile("changed by someone else"))).to_be_visible()
    audit(page)
    # The artist keeps the admin's register: Derek's questionnaire still goes.
    page.get_by_role("button", name=re.compile("^Keep the saved register")).click()
    expect(page.get_by_text("1 questionnaire for Clay Together")).to_be_visible()
    expect(page.get_by_text("the saved register stays as it is")).to_be_visible()
    audit(page)
    assert page.evaluate(WAITING_JS) == 0
    assert len(sends) == 3  # Singing's register, Clay's (refused as changed), Clay's questionnaire

    # Another loss and return of the connection sends nothing more.
    context.set_offline(True)
    context.set_offline(False)
    page.goto("/sessions/")
    expect(page.get_by_text("Ready without a connection")).to_be_visible()
    audit(page)
    assert len(sends) == 3

    marks, questionnaires, sent = saved_on_server(live_data)
    margaret, joan = group.people["Margaret Atkins"].id, group.people["Joan Pritchard"].id
    assert marks == {
        margaret: (AttendanceStatus.ATTENDED, 4, 6),
        joan: (AttendanceStatus.NO_SHOW, None, None),
        derek: (AttendanceStatus.NO_SHOW, None, None),  # the admin's, as the artist chose
    }
    assert sorted(questionnaires) == sorted([(margaret, "baseline", 23), (derek, "baseline", 23)])
    assert sent == 2


def test_a_register_saved_as_the_connection_drops_is_kept_and_arrives_once(new_context, live_data):
    day = london_today()
    group = choir(live_data, day)
    context = phone(new_context)
    sends = sends_of(context)
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, group.register_url())

    # The page came with a connection; it goes before the register is saved.
    context.set_offline(True)
    mark(page, "Margaret Atkins", "Attended", moods=("3", "8"))
    mark(page, "Joan Pritchard", "Apologies")
    page.get_by_role("button", name="Save register").click()
    expect(page.get_by_text("The connection dropped before the register reached")).to_be_visible()
    expect(page.get_by_text("Register for Singing for Breath")).to_contain_text("(2 people)")
    expect(page.get_by_text("You are offline")).to_be_visible()
    audit(page)
    assert page.evaluate(WAITING_JS) == 1

    context.set_offline(False)
    expect(page.get_by_text("sent: 1 of 2 attended")).to_be_visible()
    context.set_offline(True)
    context.set_offline(False)
    page.goto(group.register_url())
    expect(page.get_by_text("Ready without a connection")).to_be_visible()
    audit(page)

    marks, _questionnaires, sent = saved_on_server(live_data)
    assert marks == {
        group.people["Margaret Atkins"].id: (AttendanceStatus.ATTENDED, 3, 8),
        group.people["Joan Pritchard"].id: (AttendanceStatus.APOLOGIES, None, None),
    }
    assert sent == 1 and len(sends) == 1


def test_yesterdays_register_saved_as_the_connection_drops_is_kept_and_arrives(
    new_context, live_data
):
    day = london_today()
    yesterday = day - timedelta(days=1)
    group = choir(live_data, day, start=yesterday)  # a register the phone does not keep
    context = phone(new_context)
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, group.register_url())

    context.set_offline(True)
    mark(page, "Margaret Atkins", "Attended")
    mark(page, "Joan Pritchard", "Attended")
    page.get_by_role("button", name="Save register").click()
    expect(page.get_by_text("The connection dropped before the register reached")).to_be_visible()
    heading = page.get_by_role("heading", name=f"Register, {yesterday.day} {yesterday:%b %Y}")
    expect(heading).to_be_visible()
    expect(page.get_by_text("Register for Singing for Breath")).to_contain_text("(2 people)")
    audit(page)

    context.set_offline(False)
    expect(page.get_by_text("sent: 2 of 2 attended")).to_be_visible()
    marks, _questionnaires, sent = saved_on_server(live_data)
    assert {status for status, _before, _after in marks.values()} == {AttendanceStatus.ATTENDED}
    assert len(marks) == 2 and sent == 1


def test_a_register_whose_sending_fails_half_way_is_kept_and_arrives_once(new_context, live_data):
    day = london_today()
    group = choir(live_data, day)
    context = phone(new_context)
    context.expected_console_errors.append(re.compile(r"status of 503|ERR_FAILED|net::"))
    sends = sends_of(context)
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, group.register_url())
    failures: list[str] = []

    # The server's page is saved and the server fails (a gateway's 503): kept on the phone.
    def gateway_fails_once(route: Any) -> None:
        if route.request.method == "POST" and not failures:
            failures.append("page")
            route.fulfill(status=503, body="Service Unavailable")
        else:
            route.fallback()

    context.route(f"**{group.register_url()}", gateway_fails_once)

    # Its sending reaches the server, but the answer is lost on the way back.
    def answer_lost_once(route: Any) -> None:
        if len(failures) == 1:
            failures.append("send")
            route.fetch()  # the server saves it...
            route.abort("internetdisconnected")  # ...and the phone never hears
        else:
            route.fallback()

    context.route("**/register/send", answer_lost_once)

    mark(page, "Margaret Atkins", "Attended", moods=("5", "7"))
    mark(page, "Joan Pritchard", "No show")
    page.get_by_role("button", name="Save register").click()
    expect(page.get_by_text("The connection dropped before the register reached")).to_be_visible()
    # Tried again shortly with the same key: the server answers with what it recorded.
    expect(page.get_by_text("sent: 1 of 2 attended")).to_be_visible()
    audit(page)
    assert failures == ["page", "send"]
    assert page.evaluate(WAITING_JS) == 0

    # The connection comes and goes, and the app is opened again: nothing more is sent.
    context.set_offline(True)
    expect(page.get_by_text("You are offline")).to_be_visible()
    context.set_offline(False)
    page.goto(group.register_url())
    expect(page.get_by_text("Ready without a connection")).to_be_visible()
    audit(page)
    marks, _questionnaires, sent = saved_on_server(live_data)
    assert marks == {
        group.people["Margaret Atkins"].id: (AttendanceStatus.ATTENDED, 5, 7),
        group.people["Joan Pritchard"].id: (AttendanceStatus.NO_SHOW, None, None),
    }
    assert sent == 1 and len(sends) == 2


def test_the_phone_keeps_nothing_clinical_and_lets_go_when_the_artist_leaves_the_course(
    new_context, live_data
):
    day = london_today()
    group = choir(live_data, day)
    context = phone(new_context)
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, group.register_url())
    context.set_offline(True)
    page.reload()
    mark(page, "Margaret Atkins", "Attended")
    mark(page, "Joan Pritchard", "Attended")
    answer_questionnaire(page, "Margaret Atkins")
    page.get_by_role("button", name="Save register").click()
    expect(page.get_by_text("Register saved on this phone")).to_be_visible()
    audit(page)

    device = page.evaluate(DEVICE_JS)
    assert "Margaret Atkins" in device and "Joan Pritchard" in device  # what a register needs
    for enrolment in group.people.values():
        referral = enrolment.referral
        assert referral.patient.nhs_number not in device
        assert referral.patient.date_of_birth.isoformat() not in device
        assert referral.reason not in device and "long COVID" not in device
        assert referral.risk_note not in device and "self-harm" not in device
    assert '"risk' not in device and "nhs_number" not in device

    # Sent; then the artist is taken off the course: the phone lets its register go.
    context.set_offline(False)
    expect(page.get_by_text("sent: 2 of 2 attended")).to_be_visible()
    with live_data.fresh():
        group.courses[0].lead_artists = [
            factories.make_user(Role.ARTIST, organisation=group.artist.organisation)
        ]
    page.goto("/sessions/")
    expect(page.get_by_text("Ready without a connection")).to_be_visible()
    audit(page)
    kept = page.evaluate(KEPT_JS)
    assert kept is not None and kept["sessions"] == []
    assert "Margaret Atkins" not in page.evaluate(DEVICE_JS)
    context.set_offline(True)
    page.goto(group.register_url())
    expect(page.get_by_role("heading", name="This register is not on this phone")).to_be_visible()
    audit(page)


def test_the_phone_lets_the_registers_go_when_the_sign_in_ends(new_context, live_data):
    day = london_today()
    group = choir(live_data, day)
    context = phone(new_context)
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, group.register_url())
    kept = page.evaluate(KEPT_JS)
    assert kept["sessions"][0]["people"]

    # Offline, after the sign-in's last moment: the phone no longer shows or keeps them.
    page.clock.set_system_time(datetime.fromisoformat(kept["valid_until"]) + timedelta(hours=1))
    context.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", name="This register is not on this phone")).to_be_visible()
    audit(page)
    assert page.evaluate(KEPT_JS) is None

    # Online, the server has ended the sign-in: the sign-in page clears the rest.
    page2 = context.new_page()
    page.close()
    context.set_offline(False)
    with live_data.fresh() as db_session:
        for row in db_session.scalars(
            select(UserSession).where(UserSession.user_id == group.artist.id)
        ):
            row.created_at -= timedelta(hours=9)  # past the absolute timeout
    page2.goto("/sessions/")
    expect(page2).to_have_url(re.compile(r"/sign-in"))
    audit(page2)
    storage = page2.evaluate(STORAGE_JS)
    for _ in range(50):
        if storage["caches"] == [] and storage["workers"] == 0:
            break
        page2.wait_for_timeout(100)
        storage = page2.evaluate(STORAGE_JS)
    assert storage["caches"] == [] and storage["workers"] == 0
    assert "Margaret Atkins" not in page2.evaluate(DEVICE_JS)


def test_the_offline_register_with_the_keyboard_alone(new_context, live_data):
    day = london_today()
    group = choir(live_data, day)
    for enrolment in group.people.values():
        enrolment.referral.patient.phone = None  # no telephone link between the controls
    live_data.commit()
    context = phone(new_context)
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, "/sessions/")
    context.set_offline(True)
    page.reload()
    expect(page.get_by_text("You are offline")).to_be_visible()
    audit(page)  # My sessions, from the phone
    page.get_by_role("link", name=re.compile("Singing for Breath")).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("^Register, "))).to_be_visible()
    audit(page)

    keys = KeyboardUser(page)
    page.get_by_role("group", name="Margaret Atkins", exact=True).get_by_label(
        "Attended", exact=True
    ).focus()
    keys.space()
    keys.tab("Mood before")
    keys.type("4")
    keys.tab("Mood after")
    keys.type("7")
    keys.tab("Note")
    keys.tab("Record a wellbeing questionnaire")
    page.keyboard.press("Enter")  # opens the questionnaire
    for _number, answer in enumerate(SWEMWBS, start=1):
        keys.tab("1")
        for value in range(2, answer + 1):
            keys.press("ArrowRight", str(value))
    keys.tab("Attended")  # Joan
    keys.press("ArrowRight", "Apologies")
    keys.tab("Mood before")
    keys.tab("Mood after")
    keys.tab("Note")
    keys.tab("Record a wellbeing questionnaire")
    keys.tab("Save register")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Register saved on this phone: 1 of 2 attended")).to_be_visible()
    audit(page)

    context.set_offline(False)
    expect(page.get_by_text("sent: 1 of 2 attended")).to_be_visible()
    marks, questionnaires, _sent = saved_on_server(live_data)
    margaret = group.people["Margaret Atkins"].id
    assert marks[margaret] == (AttendanceStatus.ATTENDED, 4, 7)
    assert questionnaires == [(margaret, "baseline", 23)]
    assert marks[group.people["Joan Pritchard"].id][0] is AttendanceStatus.APOLOGIES


def test_a_register_refused_when_it_arrives_is_kept_for_an_admin(new_context, live_data):
    day = london_today()
    group = choir(live_data, day)
    context = phone(new_context)
    context.expected_console_errors.append(re.compile(r"status of 409 \(CONFLICT\)"))
    page = context.new_page()
    sign_in(page, group.artist.email)
    kept_online(page, group.register_url())
    context.set_offline(True)
    page.reload()
    mark(page, "Margaret Atkins", "Attended", moods=("2", "5"))
    mark(page, "Joan Pritchard", "No show")
    answer_questionnaire(page, "Margaret Atkins")
    page.get_by_role("button", name="Save register").click()
    expect(page.get_by_text("Register saved on this phone")).to_be_visible()

    # Meanwhile the session is cancelled on the server: the register has nowhere to go.
    cancel_session(group.admin, group.courses[0].sessions[0], "Hall flooded")
    live_data.commit()

    context.set_offline(False)
    refused = page.locator(".nhsuk-warning-callout").filter(has_text="not accepted")
    expect(refused).to_contain_text("This session was cancelled; it has no register")
    expect(refused).to_contain_text("Margaret Atkins: Attended, mood 2 to 5")
    expect(refused).to_contain_text(
        "Margaret Atkins: baseline wellbeing questionnaire, answers 3, 4, 3, 3, 4, 3, 3"
    )
    audit(page)
    assert page.evaluate(WAITING_JS) == 1  # kept for an admin to enter
    marks, questionnaires, _sent = saved_on_server(live_data)
    assert marks == {} and questionnaires == []

    # Once an admin has entered it, the artist removes it from the phone.
    page.get_by_role("button", name=re.compile("^Remove from this phone")).click()
    expect(refused).to_have_count(0)
    audit(page)
    assert page.evaluate(WAITING_JS) == 0
