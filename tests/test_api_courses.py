"""Course endpoints of the JSON API: directory, courses, sessions, enrolments and waiting lists,
registers, session cancelling, wellbeing, contracts and the Open Referral UK view."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses.models import (
    Attendance,
    Contract,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.courses.schedule import Frequency, Schedule
from referrals.courses.services import (
    enrol,
    save_register,
)
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.intake.models import Referral
from referrals.intake.services import record_conversation
from referrals.outcomes.models import WellbeingAssessment
from referrals.vocab import ArtForm, Pathway
from tests import factories
from tests.course_helpers import from_start
from tests.intake_helpers import make_referral, nhs_numbers
from tests.query_counts import counting_queries

API = "/api/v1"
_nhs = nhs_numbers()
_serial = itertools.count(1)


def count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# Builders -----------------------------------------------------------------------------------


def make_contract(commissioner: Organisation | None = None) -> Contract:
    return factories.make_contract(
        commissioner=commissioner, start_date=date(2026, 1, 1), end_date=date(2027, 12, 31)
    )


def make_course(
    provider: Organisation,
    *,
    start: date | None = None,
    frequency: Frequency = Frequency.WEEKLY,
    pathways: tuple[Pathway, ...] = (Pathway.COPD_ASTHMA,),
    **overrides: Any,
) -> Course:
    """A course whose first session was two days ago (bank holidays not skipped, so the
    session dates are predictable)."""
    schedule = Schedule(
        start_date=start or clock.today() - timedelta(days=2),
        start_time=time(10, 0),
        duration_minutes=120,
        frequency=frequency,
        sessions=8,
        skip_bank_holidays=False,
    )
    return factories.make_course(
        provider,
        title=f"Singing for Better Breathing {next(_serial)}",
        contract=overrides.pop("contract", None) or make_contract(),
        schedule=schedule,
        pathways=pathways,
        cost_per_session_pence=3300,
        **overrides,
    )


def assessed_referral(link_worker: User, practice: Organisation, **overrides: Any) -> Referral:
    referral = make_referral(
        link_worker, practice, nhs=next(_nhs), today=clock.today(), **overrides
    )
    record_conversation(link_worker, referral, held_on=clock.today(), what_matters="Singing")
    return referral


def first_session(course: Course) -> CourseSession:
    return db.session.scalars(
        select(CourseSession)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.date)
    ).first()


@dataclass
class World:
    """A provider with an artist and a course, a link worker, an admin and a GP practice."""

    provider: Organisation
    artist: User
    link_worker: User
    admin: User
    practice: Organisation
    referrer: User
    course: Course

    def enrol(self, referral: Referral, course: Course | None = None) -> Enrolment:
        course = course or self.course
        return enrol(self.link_worker, referral, course, today=clock.today(), at=from_start(course))

    def person(self, **overrides: Any) -> Referral:
        return assessed_referral(self.link_worker, self.practice, **overrides)


@pytest.fixture()
def world(app: Any) -> World:
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    built = World(
        provider=provider,
        artist=factories.make_user(Role.ARTIST, organisation=provider),
        link_worker=factories.make_user(Role.LINK_WORKER),
        admin=factories.make_user(Role.ADMIN),
        practice=practice,
        referrer=factories.make_user(Role.REFERRER, organisation=practice),
        course=make_course(provider),
    )
    db.session.commit()
    return built


class Caller:
    """An API client acting as one user."""

    def __init__(self, client: FlaskClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def get(self, path: str) -> Any:
        return self.client.get(API + path, headers=self.headers)

    def send(self, method: str, path: str, body: Any = None, *, raw: str | None = None) -> Any:
        if raw is not None:
            return self.client.open(
                API + path,
                method=method,
                data=raw,
                headers={**self.headers, "Content-Type": "application/json"},
            )
        return self.client.open(API + path, method=method, json=body, headers=self.headers)

    def post(self, path: str, body: Any = None) -> Any:
        return self.send("POST", path, body)


@pytest.fixture()
def as_user(api_client: Any) -> Any:
    def _make(who: User | Role) -> Caller:
        client, headers = api_client(who)
        return Caller(client, headers)

    return _make


def problem_fields(response: Any) -> set[str]:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    return set(response.get_json().get("errors", {}))


# The directory ------------------------------------------------------------------------------


def test_the_directory_shows_courses_with_places_left_and_schedule(world, as_user):
    world.enrol(world.person())
    db.session.commit()
    for role in Role:
        page = as_user(role).get("/courses")
        assert page.status_code == 200, role
    admin = as_user(world.admin)
    page = admin.get("/courses").get_json()
    assert page["total"] == 1 and page["page"] == 1
    item = page["items"][0]
    assert item["title"] == world.course.title
    assert item["art_form"] == "singing"
    assert item["provider_id"] == world.provider.id
    assert item["contract_id"] == world.course.contract_id
    assert item["capacity"] == 10 and item["places_left"] == 9
    assert item["cost_per_session_pence"] == 3300
    assert item["pathways"] == ["copd_asthma"]
    assert item["venue"]["postcode"] == "GL1 2AB"
    assert item["venue"]["accessibility"].startswith("Step-free")
    start = clock.today() - timedelta(days=2)
    assert item["schedule"] == {
        "start_date": start.isoformat(),
        "start_time": "10:00",
        "end_time": "12:00",
        "duration_minutes": 120,
        "frequency": "weekly",
        "weekday": start.strftime("%A").lower(),
        "sessions": 8,
        "taster_sessions": 0,
        "end_date": (start + timedelta(weeks=7)).isoformat(),
    }
    assert item["participant_fee_pence"] is None  # free
    one = admin.get(f"/courses/{world.course.id}")
    assert one.status_code == 200
    assert one.get_json() == item


def test_the_cost_to_the_contract_is_never_given_to_referrers_as_a_price(world, as_user):
    for role in Role:
        caller = as_user(world.artist if role is Role.ARTIST else role)  # their own provider's
        listed = caller.get("/courses").get_json()["items"][0]
        one = caller.get(f"/courses/{world.course.id}").get_json()
        sees_cost = role in (Role.ADMIN, Role.COMMISSIONER)
        for body in (listed, one):
            assert ("cost_per_session_pence" in body) is sees_cost, role
            assert body["participant_fee_pence"] is None


def test_the_directory_filters(world, as_user):
    other_provider = factories.make_organisation(OrganisationKind.PROVIDER)
    monday = clock.today() - timedelta(days=clock.today().weekday())
    dance = make_course(
        other_provider,
        art_form=ArtForm.DANCE,
        pathways=(Pathway.DEMENTIA, Pathway.SOCIAL_ISOLATION),
        start=monday,
        capacity=1,
    )
    world.enrol(world.person(), dance)
    db.session.commit()
    caller = as_user(world.link_worker)

    def titles(query: str) -> set[str]:
        response = caller.get(f"/courses?{query}")
        assert response.status_code == 200, response.get_json()
        return {item["title"] for item in response.get_json()["items"]}

    assert titles("art_form=dance") == {dance.title}
    assert titles("pathway=social_isolation") == {dance.title}
    assert titles("pathway=copd_asthma") == {world.course.title}
    assert titles("pathway=mental_health") == set()
    assert titles("weekday=monday") >= {dance.title}
    weekday = world.course.start_date.strftime("%A").lower()
    assert world.course.title in titles(f"weekday={weekday}")
    assert titles(f"provider_id={other_provider.id}") == {dance.title}
    assert titles("has_places=true") == {world.course.title}
    assert titles("has_places=false") == {dance.title}
    assert titles("art_form=singing&has_places=false") == set()

    response = caller.get(
        "/courses?art_form=opera&pathway=knees&weekday=someday&provider_id=x&has_places=maybe"
    )
    assert response.status_code == 422
    assert problem_fields(response) == {
        "art_form",
        "pathway",
        "weekday",
        "provider_id",
        "has_places",
    }


def _statements_for(caller: Caller, path: str) -> int:
    with counting_queries() as statements:
        response = caller.get(path)
    assert response.status_code == 200
    return len(statements)


@pytest.mark.parametrize("path", ["/courses?per_page=100"])
def test_the_directory_takes_the_same_number_of_queries_for_3_and_30_courses(world, as_user, path):
    caller = as_user(world.link_worker)
    providers = [world.provider, *(factories.make_organisation("provider") for _ in range(2))]

    def add(how_many: int) -> None:
        for number in range(how_many):
            course = make_course(providers[number % 3], capacity=2)
            if number % 2:
                world.enrol(world.person(), course)
        db.session.commit()

    add(2)
    few = _statements_for(caller, path)
    add(27)
    assert caller.get(path).get_json()["total"] == 30
    assert _statements_for(caller, path) == few


def test_artists_see_their_own_providers_courses_only(world, as_user):
    elsewhere = make_course(factories.make_organisation(OrganisationKind.PROVIDER))
    db.session.commit()
    artist = as_user(world.artist)
    assert [c["id"] for c in artist.get("/courses").get_json()["items"]] == [world.course.id]
    assert artist.get(f"/courses/{elsewhere.id}").status_code == 404
    assert artist.get(f"/courses/{elsewhere.id}/sessions").status_code == 404
    assert artist.get("/courses/999999").status_code == 404


def test_a_courses_sessions_are_listed_in_date_order(world, as_user):
    response = as_user(world.referrer).get(f"/courses/{world.course.id}/sessions?per_page=5")
    assert response.status_code == 200
    page = response.get_json()
    assert page["total"] == 8 and len(page["items"]) == 5
    dates = [item["date"] for item in page["items"]]
    assert dates == sorted(dates)
    assert page["items"][0]["status"] == "planned"
    assert set(page["items"][0]) >= {"id", "date", "status", "start_time", "end_time"}


# Creating courses ---------------------------------------------------------------------------


def course_body(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Painting for Wellbeing",
        "description": "Eight gentle sessions of painting and drawing",
        "art_form": "visual_art",
        "provider_id": world.provider.id,
        "contract_id": world.course.contract_id,
        "venue": {
            "name": "Museum of Gloucester",
            "address": "Brunswick Road\nGloucester",
            "postcode": "gl1 1hp",
            "accessibility": "Lift to all floors",
        },
        "capacity": 12,
        "cost_per_session_pence": 3300,
        "pathways": ["mental_health", "social_isolation"],
        "schedule": {
            "start_date": "2027-03-02",
            "start_time": "10:00",
            "duration_minutes": 120,
            "frequency": "fortnightly",
            "sessions": 8,
            "taster_sessions": 2,
        },
    }
    body.update(overrides)
    return body


def test_an_admin_creates_a_course_with_a_new_venue_and_its_sessions(world, as_user):
    venues = count(Venue)
    response = as_user(world.admin).post("/courses", course_body(world))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/courses/{body['id']}"
    assert body["title"] == "Painting for Wellbeing"
    assert body["places_left"] == 12
    assert body["venue"]["postcode"] == "GL1 1HP"
    assert body["schedule"]["frequency"] == "fortnightly"
    assert body["schedule"]["taster_sessions"] == 2 and body["schedule"]["sessions"] == 8
    assert count(Venue) == venues + 1
    sessions = body["sessions"]
    assert len(sessions) == 10
    assert [s["is_taster"] for s in sessions[:3]] == [True, True, False]
    days = [date.fromisoformat(s["date"]) for s in sessions]
    assert days[0] == date(2027, 3, 2)
    assert all(later - earlier >= timedelta(weeks=2) for earlier, later in itertools.pairwise(days))
    assert {day.weekday() for day in days} == {1}  # Tuesdays
    stored = db.session.get(Course, body["id"])
    assert stored.pathways == ["mental_health", "social_isolation"]
    assert count(AuditEvent, AuditEvent.action == "course.created") == 2


def test_a_course_can_use_a_known_venue(world, as_user):
    body = course_body(world, venue=None, venue_id=world.course.venue_id)
    del body["venue"]
    response = as_user(world.admin).post("/courses", body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["venue"]["id"] == world.course.venue_id


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    target = body
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    if value is _DROP:
        target.pop(last, None)
    else:
        target[last] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("title", 5, "title"),
        ("title", "   ", "title"),
        ("title", _DROP, "title"),
        ("art_form", "opera", "art_form"),
        ("provider_id", "1", "provider_id"),
        ("provider_id", 999_999, "provider_id"),
        ("contract_id", 10**40, "contract_id"),
        ("capacity", True, "capacity"),
        ("capacity", 0, "capacity"),
        ("capacity", 2.5, "capacity"),
        ("cost_per_session_pence", -1, "cost_per_session_pence"),
        ("pathways", ["knees"], "pathways"),
        ("pathways", "mental_health", "pathways"),
        ("min_age", "eighteen", "min_age"),
        ("colour", "blue", "colour"),
        ("venue", "the hall", "venue"),
        ("venue", _DROP, "venue"),
        ("venue.postcode", "NOT A CODE", "venue.postcode"),
        ("venue.name", _DROP, "venue.name"),
        ("venue.floor", 2, "venue.floor"),
        ("venue_id", 1, "venue_id"),
        ("schedule", _DROP, "schedule"),
        ("schedule", [], "schedule"),
        ("schedule.start_date", "2027-02-30", "schedule.start_date"),
        ("schedule.start_date", "2/3/2027", "schedule.start_date"),
        ("schedule.start_date", 20270302, "schedule.start_date"),
        ("schedule.start_time", "25:00", "schedule.start_time"),
        ("schedule.start_time", "10am", "schedule.start_time"),
        ("schedule.duration_minutes", "120", "schedule.duration_minutes"),
        ("schedule.duration_minutes", 5, "schedule.duration_minutes"),
        ("schedule.frequency", "monthly", "schedule.frequency"),
        ("schedule.sessions", 0, "schedule.sessions"),
        ("schedule.sessions", 201, "schedule.sessions"),
        ("schedule.sessions", _DROP, "schedule.sessions"),
        ("schedule.taster_sessions", 11, "schedule.taster_sessions"),
        ("schedule.terms", 3, "schedule.terms"),
    ],
)
def test_bad_course_fields_are_422_at_the_field_and_nothing_is_stored(
    world, as_user, path, value, field
):
    courses, venues = count(Course), count(Venue)
    response = as_user(world.admin).post("/courses", _with(course_body(world), path, value))
    assert response.status_code == 422, response.get_json()
    assert field in problem_fields(response)
    assert (count(Course), count(Venue)) == (courses, venues)


def test_a_rule_broken_after_the_venue_is_made_leaves_nothing_behind(world, as_user):
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    artist_elsewhere = factories.make_user(Role.ARTIST)
    db.session.commit()
    admin = as_user(world.admin)
    courses, venues = count(Course), count(Venue)
    for body, field in (
        (course_body(world, provider_id=commissioner.id), "provider_id"),
        (course_body(world, lead_artist_ids=[artist_elsewhere.id]), "lead_artist_ids"),
        (course_body(world, min_age=70, max_age=18), "min_age"),
    ):
        response = admin.post("/courses", body)
        assert response.status_code == 422, response.get_json()
        assert problem_fields(response) == {field}
    assert (count(Course), count(Venue)) == (courses, venues)


@pytest.mark.parametrize("role", [Role.LINK_WORKER, Role.REFERRER, Role.ARTIST, Role.COMMISSIONER])
def test_only_admins_create_courses(world, as_user, role):
    response = as_user(role).post("/courses", course_body(world))
    assert response.status_code == 403
    assert count(Course) == 1


# Enrolment and the waiting list -------------------------------------------------------------


def test_a_full_course_puts_people_on_the_waiting_list_in_order(world, as_user):
    course = make_course(world.provider, capacity=1)
    people = [world.person() for _ in range(3)]
    db.session.commit()
    caller = as_user(world.link_worker)
    answers = [
        caller.post(f"/courses/{course.id}/enrolments", {"referral_id": person.id})
        for person in people
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    bodies = [a.get_json() for a in answers]
    assert [(b["status"], b["waitlist_position"]) for b in bodies] == [
        ("enrolled", None),
        ("waitlisted", 1),
        ("waitlisted", 2),
    ]
    assert answers[0].headers["Location"] == f"/api/v1/enrolments/{bodies[0]['id']}"
    assert {b["course_id"] for b in bodies} == {course.id}
    assert [db.session.get(Referral, p.id).status for p in people] == [
        Status.ENROLLED,
        Status.WAITLISTED,
        Status.WAITLISTED,
    ]
    assert caller.get(f"/courses/{course.id}").get_json()["places_left"] == 0


def test_two_people_enrolled_at_once_on_the_last_place_do_not_both_get_it(world, as_user):
    course = make_course(world.provider, capacity=1)
    people = [world.person() for _ in range(2)]
    callers = [as_user(world.link_worker), as_user(world.admin)]
    url = f"/courses/{course.id}/enrolments"
    ids = [person.id for person in people]
    db.session.commit()  # and no ORM reads while the requests run
    answers: list[Any] = []
    start = threading.Barrier(2)

    def send(caller: Caller, referral_id: int) -> None:
        start.wait()
        answers.append(caller.post(url, {"referral_id": referral_id}))

    threads = [
        threading.Thread(target=send, args=(caller, referral_id))
        for caller, referral_id in zip(callers, ids, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [201, 201]
    assert sorted(a.get_json()["status"] for a in answers) == ["enrolled", "waitlisted"]


def test_enrolment_rule_breaks_are_refused_with_the_field(world, as_user):
    not_assessed = make_referral(world.link_worker, world.practice, nhs=next(_nhs))
    enrolled = world.person()
    world.enrol(enrolled)
    db.session.commit()
    caller = as_user(world.admin)
    url = f"/courses/{world.course.id}/enrolments"
    for referral in (not_assessed, enrolled):
        response = caller.post(url, {"referral_id": referral.id})
        assert response.status_code == 409
        assert problem_fields(response) == {"referral_id"}
    for body, field in (
        ({"referral_id": 999_999}, "referral_id"),
        ({"referral_id": "1"}, "referral_id"),
        ({}, "referral_id"),
        ({"referral_id": enrolled.id, "course": 1}, "course"),
    ):
        response = caller.post(url, body)
        assert response.status_code == 422
        assert field in problem_fields(response)
    assert caller.post("/courses/999999/enrolments", {"referral_id": 1}).status_code == 404
    assert count(Enrolment) == 1


@pytest.mark.parametrize("role", [Role.ARTIST, Role.REFERRER, Role.COMMISSIONER])
def test_only_link_workers_and_admins_enrol(world, as_user, role):
    person = world.person()
    db.session.commit()
    response = as_user(role).post(
        f"/courses/{world.course.id}/enrolments", {"referral_id": person.id}
    )
    assert response.status_code == 403
    assert count(Enrolment) == 0


def test_withdrawing_offers_the_place_to_the_first_person_waiting(world, as_user):
    course = make_course(world.provider, capacity=1)
    first, second, third = (world.enrol(world.person(), course) for _ in range(3))
    db.session.commit()
    caller = as_user(world.link_worker)
    response = caller.post(f"/enrolments/{first.id}/withdraw", {"reason": "Moved away"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == first.id and body["status"] == "withdrawn"
    assert body["withdrawn_reason"] == "Moved away"
    assert body["offered_to"] == second.id
    offered = caller.get(f"/enrolments/{second.id}").get_json()
    assert offered["status"] == "offered"
    assert offered["offer_expires_on"] == (date.today() + timedelta(days=3)).isoformat()
    assert caller.get(f"/enrolments/{third.id}").get_json()["waitlist_position"] == 1

    again = caller.post(f"/enrolments/{first.id}/withdraw", {"reason": "Twice"})
    assert again.status_code == 409
    waiting = caller.post(f"/enrolments/{third.id}/withdraw", {"reason": "Found another group"})
    assert waiting.get_json()["offered_to"] is None
    for bad in ({}, {"reason": "  "}, {"reason": 3}, {"reason": "x", "why": "y"}):
        response = caller.post(f"/enrolments/{second.id}/withdraw", bad)
        assert response.status_code == 422
    assert db.session.get(Enrolment, second.id).status is EnrolmentStatus.OFFERED
    assert (
        as_user(world.artist).post(f"/enrolments/{second.id}/withdraw", {"reason": "x"}).status_code
        == 403
    )


def test_an_enrolment_shows_each_role_only_what_it_may_see(world, as_user):
    person = world.person(given_name="Margaret", family_name="Atkins")
    person.patient.access_needs = "Uses a wheelchair"
    enrolment = world.enrol(person)
    db.session.commit()
    url = f"/enrolments/{enrolment.id}"

    full = as_user(world.link_worker).get(url)
    assert full.status_code == 200
    assert full.get_json()["referral_id"] == person.id
    assert "person" not in full.get_json()
    assert as_user(world.admin).get(url).status_code == 200
    assert as_user(world.referrer).get(url).status_code == 200

    response = as_user(world.artist).get(url)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"id", "course_id", "course_title", "status", "person", "attendance"}
    assert body["person"] == {
        "name": "Margaret Atkins",
        "access_needs": "Uses a wheelchair",
        "phone": "01632960001",
    }
    text = response.get_data(as_text=True)
    assert person.patient.nhs_number not in text
    assert person.reason not in text
    assert count(AuditEvent, AuditEvent.action == "enrolment.viewed") == 4

    other_artist = factories.make_user(Role.ARTIST)
    other_referrer = factories.make_user(Role.REFERRER)
    assert as_user(other_artist).get(url).status_code == 404
    assert as_user(other_referrer).get(url).status_code == 404
    assert as_user(Role.COMMISSIONER).get(url).status_code == 403
    assert as_user(world.admin).get("/enrolments/999999").status_code == 404


def test_artists_never_see_the_waiting_list(world, as_user):
    course = make_course(world.provider, capacity=1)
    world.enrol(world.person(), course)
    waiting = world.enrol(world.person(), course)
    db.session.commit()
    artist = as_user(world.artist)
    assert artist.get(f"/enrolments/{waiting.id}").status_code == 404
    body = {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3] * 7}
    assert artist.post(f"/enrolments/{waiting.id}/wellbeing", body).status_code == 404


# Registers ----------------------------------------------------------------------------------


@pytest.fixture()
def register(world: World) -> tuple[CourseSession, list[Enrolment]]:
    people = [world.enrol(world.person()) for _ in range(3)]
    session = first_session(world.course)
    db.session.commit()
    assert session.date == clock.today() - timedelta(days=2)
    return session, people


def entries(people: list[Enrolment], **changes: Any) -> dict[str, Any]:
    rows = [
        {"enrolment_id": people[0].id, "status": "attended", "mood_before": 4, "mood_after": 7},
        {"enrolment_id": people[1].id, "status": "apologies"},
        {"enrolment_id": people[2].id, "status": "no_show", "note": "No answer by phone"},
    ]
    for key, value in changes.items():
        index, name = key.split("__")
        rows[int(index)][name] = value
    return {"entries": rows}


def test_an_artist_takes_the_register(world, as_user, register):
    session, people = register
    artist = as_user(world.artist)
    before = artist.get(f"/sessions/{session.id}/register")
    assert before.status_code == 200
    assert before.get_json()["editable"] is True
    assert [e["enrolment_id"] for e in before.get_json()["entries"]] == [p.id for p in people]
    assert all(e["mark"] is None for e in before.get_json()["entries"])
    for person in people:
        assert person.referral.patient.nhs_number not in before.get_data(as_text=True)

    response = artist.send("PUT", f"/sessions/{session.id}/register", entries(people))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["session"]["status"] == "delivered"
    marks = {e["enrolment_id"]: e["mark"] for e in body["entries"]}
    assert marks[people[0].id] == {
        "status": "attended",
        "mood_before": 4,
        "mood_after": 7,
        "note": "",
    }
    assert marks[people[2].id]["note"] == "No answer by phone"
    assert db.session.get(CourseSession, session.id).status is SessionStatus.DELIVERED
    assert count(Attendance) == 3
    assert db.session.get(Referral, people[0].referral_id).status is Status.STARTED

    attendance = artist.get(f"/enrolments/{people[0].id}").get_json()["attendance"]
    assert attendance == [
        {
            "session_id": session.id,
            "date": session.date.isoformat(),
            "status": "attended",
            "mood_before": 4,
            "mood_after": 7,
            "note": "",
        }
    ]


def test_an_artist_opens_the_enrolment_of_anyone_on_a_register(world, as_user, register):
    """Someone marked at a session and withdrawn since stays on its register, so the artist
    may open their enrolment too: pages and API share one loader."""
    session, people = register
    artist = as_user(world.artist)
    assert (
        artist.send("PUT", f"/sessions/{session.id}/register", entries(people)).status_code == 200
    )
    withdrawn = as_user(world.link_worker).post(
        f"/enrolments/{people[0].id}/withdraw", {"reason": "Moved away"}
    )
    assert withdrawn.get_json()["status"] == "withdrawn"
    listed = artist.get(f"/sessions/{session.id}/register").get_json()["entries"]
    assert people[0].id in [entry["enrolment_id"] for entry in listed]
    response = artist.get(f"/enrolments/{people[0].id}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "withdrawn"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"1__mood_after": 11}, "entries.1.mood_after"),
        ({"0__mood_before": -1}, "entries.0.mood_before"),
        ({"0__mood_after": "7"}, "entries.0.mood_after"),
        ({"2__status": "late"}, "entries.2.status"),
        ({"0__enrolment_id": 999_999}, "entries.0.enrolment_id"),
        ({"1__enrolment_id": "x"}, "entries.1.enrolment_id"),
        ({"2__note": "n" * 1001}, "entries.2.note"),
        ({"1__colour": "red"}, "entries.1.colour"),
    ],
)
def test_a_register_with_one_bad_entry_saves_nothing(world, as_user, register, changes, field):
    session, people = register
    response = as_user(world.artist).send(
        "PUT", f"/sessions/{session.id}/register", entries(people, **changes)
    )
    assert response.status_code == 422, response.get_json()
    assert problem_fields(response) == {field}
    assert count(Attendance) == 0
    assert db.session.get(CourseSession, session.id).status is SessionStatus.PLANNED
    assert {db.session.get(Referral, p.referral_id).status for p in people} == {Status.ENROLLED}


def test_a_person_listed_twice_or_from_another_course_is_refused(world, as_user, register):
    session, people = register
    elsewhere = world.enrol(world.person(), make_course(world.provider))
    db.session.commit()
    body = entries(people, **{"2__enrolment_id": people[0].id})
    artist = as_user(world.artist)
    response = artist.send("PUT", f"/sessions/{session.id}/register", body)
    assert problem_fields(response) == {"entries.2.enrolment_id"}
    body = entries(people, **{"1__enrolment_id": elsewhere.id})
    response = artist.send("PUT", f"/sessions/{session.id}/register", body)
    assert problem_fields(response) == {"entries.1.enrolment_id"}
    assert count(Attendance) == 0


@pytest.mark.parametrize(
    "body", [None, [], "entries", {"entries": "all"}, {"entries": [1]}, {"rows": []}]
)
def test_a_malformed_register_is_422(world, as_user, register, body):
    session, _people = register
    response = as_user(world.artist).send("PUT", f"/sessions/{session.id}/register", body)
    assert response.status_code == 422
    assert count(Attendance) == 0


def test_a_cancelled_session_has_no_register(world, as_user, register):
    session, people = register
    artist = as_user(world.artist)
    cancelled = artist.send(
        "PATCH", f"/sessions/{session.id}", {"status": "cancelled", "reason": "Heating broken"}
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["status"] == "cancelled"
    assert cancelled.get_json()["cancelled_reason"] == "Heating broken"
    response = artist.send("PUT", f"/sessions/{session.id}/register", entries(people))
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    admin = as_user(world.admin)
    assert admin.send("PUT", f"/sessions/{session.id}/register", entries(people)).status_code == 409
    assert count(Attendance) == 0


def test_another_providers_artist_gets_404_for_the_session(world, as_user, register):
    session, people = register
    stranger = as_user(factories.make_user(Role.ARTIST))
    assert stranger.get(f"/sessions/{session.id}/register").status_code == 404
    response = stranger.send("PUT", f"/sessions/{session.id}/register", entries(people))
    assert response.status_code == 404
    cancel = {"status": "cancelled", "reason": "Not mine"}
    assert stranger.send("PATCH", f"/sessions/{session.id}", cancel).status_code == 404
    for person in people:
        assert stranger.get(f"/enrolments/{person.id}").status_code == 404
    assert count(Attendance) == 0
    assert db.session.get(CourseSession, session.id).status is SessionStatus.PLANNED


@pytest.mark.parametrize("role", [Role.LINK_WORKER, Role.REFERRER, Role.COMMISSIONER])
def test_only_artists_and_admins_take_registers(world, as_user, register, role):
    session, people = register
    caller = as_user(role)
    assert caller.get(f"/sessions/{session.id}/register").status_code == 403
    response = caller.send("PUT", f"/sessions/{session.id}/register", entries(people))
    assert response.status_code == 403
    cancel = {"status": "cancelled", "reason": "x"}
    assert caller.send("PATCH", f"/sessions/{session.id}", cancel).status_code == 403


def test_artists_have_an_edit_window_and_admins_do_not(world, as_user):
    course = make_course(world.provider, start=clock.today() - timedelta(days=10))
    person = world.enrol(world.person(), course)
    old, recent = db.session.scalars(
        select(CourseSession)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.date)
    ).all()[:2]
    db.session.commit()
    body = {"entries": [{"enrolment_id": person.id, "status": "attended"}]}
    artist = as_user(world.artist)
    assert artist.get(f"/sessions/{old.id}/register").get_json()["editable"] is False
    response = artist.send("PUT", f"/sessions/{old.id}/register", body)
    assert response.status_code == 409
    assert artist.send("PUT", f"/sessions/{recent.id}/register", body).status_code == 200
    assert as_user(world.admin).send("PUT", f"/sessions/{old.id}/register", body).status_code == 200


def test_a_future_sessions_register_cannot_be_taken(world, as_user, register):
    _session, people = register
    later = db.session.scalars(
        select(CourseSession)
        .where(CourseSession.course_id == world.course.id)
        .order_by(CourseSession.date.desc())
    ).first()
    response = as_user(world.admin).send("PUT", f"/sessions/{later.id}/register", entries(people))
    assert response.status_code == 409


def test_cancelling_needs_a_reason_and_cannot_undo_a_register(world, as_user, register):
    session, people = register
    admin = as_user(world.admin)
    url = f"/sessions/{session.id}"
    for body, field in (
        ({"status": "cancelled"}, "reason"),
        ({"status": "cancelled", "reason": " "}, "reason"),
        ({"status": "delivered", "reason": "x"}, "status"),
        ({"reason": "x"}, "status"),
        ({"status": "cancelled", "reason": "x", "date": "2027-01-01"}, "date"),
    ):
        response = admin.send("PATCH", url, body)
        assert response.status_code == 422
        assert field in problem_fields(response)
    assert admin.send("PUT", f"{url}/register", entries(people)).status_code == 200
    response = admin.send("PATCH", url, {"status": "cancelled", "reason": "Too late"})
    assert response.status_code == 409
    assert db.session.get(CourseSession, session.id).status is SessionStatus.DELIVERED


# Wellbeing ----------------------------------------------------------------------------------


def test_a_swemwbs_questionnaire_is_scored_with_the_metric_conversion(world, as_user, register):
    _session, people = register
    response = as_user(world.artist).post(
        f"/enrolments/{people[0].id}/wellbeing",
        {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3, 3, 3, 3, 3, 3, 3]},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["raw_score"] == 21
    assert body["metric_score"] == 19.25  # the published table, not the raw total
    assert isinstance(body["metric_score"], float)
    assert body["recorded_on"] == clock.today().isoformat()

    response = as_user(world.link_worker).post(
        f"/enrolments/{people[1].id}/wellbeing",
        {
            "instrument": "WEMWBS",
            "timepoint": "baseline",
            "items": [4] * 14,
            "recorded_on": (clock.today() - timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 201
    assert (response.get_json()["raw_score"], response.get_json()["metric_score"]) == (56, 56)
    assert count(WellbeingAssessment) == 2


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3] * 6}, {"items"}),
        (
            {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3, 3, 6, 3, 3, 3, 3]},
            {"items.2"},
        ),
        (
            {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3, 3, 3, True, 3, 3, 3]},
            {"items.3"},
        ),
        ({"instrument": "SWEMWBS", "timepoint": "baseline", "items": "3333333"}, {"items"}),
        (
            {"instrument": "GAD7", "timepoint": "later", "items": [3] * 7},
            {"instrument", "timepoint"},
        ),
        ({"timepoint": "baseline", "items": [3] * 7}, {"instrument"}),
        (
            {
                "instrument": "SWEMWBS",
                "timepoint": "end",
                "items": [3] * 7,
                "recorded_on": "2999-01-01",
            },
            {"recorded_on"},
        ),
        (
            {"instrument": "SWEMWBS", "timepoint": "end", "items": [3] * 7, "recorded_on": "today"},
            {"recorded_on"},
        ),
        (
            {
                "instrument": "SWEMWBS",
                "timepoint": "end",
                "items": [3] * 7,
                "recorded_on": "0001-01-01",
            },
            {"recorded_on"},
        ),
        ({"instrument": "SWEMWBS", "timepoint": "end", "items": [3] * 7, "mood": 1}, {"mood"}),
    ],
)
def test_bad_questionnaires_are_422_and_not_stored(world, as_user, register, body, fields):
    _session, people = register
    response = as_user(world.admin).post(f"/enrolments/{people[0].id}/wellbeing", body)
    assert response.status_code == 422, response.get_json()
    assert problem_fields(response) == fields
    assert count(WellbeingAssessment) == 0


def test_the_api_refuses_a_timepoint_the_course_does_not_call_for(world, as_user, register):
    session, people = register
    admin = as_user(world.admin)
    assert admin.send("PUT", f"/sessions/{session.id}/register", entries(people)).status_code == 200
    # Two days into a course of 8 weekly sessions: neither its end nor a follow-up.
    for timepoint in ("end", "follow_up"):
        body = {"instrument": "SWEMWBS", "timepoint": timepoint, "items": [3] * 7}
        response = admin.post(f"/enrolments/{people[1].id}/wellbeing", body)
        assert response.status_code == 422
        assert problem_fields(response) == {"timepoint"}
    # People[0] attended the first session, two days ago: a baseline today is too late.
    body = {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3] * 7}
    response = admin.post(f"/enrolments/{people[0].id}/wellbeing", body)
    assert response.status_code == 422
    assert "first session the person attended" in response.get_json()["errors"]["timepoint"][0]
    body["recorded_on"] = session.date.isoformat()
    assert admin.post(f"/enrolments/{people[0].id}/wellbeing", body).status_code == 201
    assert count(WellbeingAssessment) == 1


@pytest.mark.parametrize("role", [Role.REFERRER, Role.COMMISSIONER])
def test_referrers_and_commissioners_do_not_record_wellbeing(world, as_user, register, role):
    _session, people = register
    body = {"instrument": "SWEMWBS", "timepoint": "baseline", "items": [3] * 7}
    assert as_user(role).post(f"/enrolments/{people[0].id}/wellbeing", body).status_code == 403
    stranger = as_user(factories.make_user(Role.ARTIST))
    assert stranger.post(f"/enrolments/{people[0].id}/wellbeing", body).status_code == 404
    assert count(WellbeingAssessment) == 0


# Contracts ----------------------------------------------------------------------------------


def contract_body(commissioner: Organisation, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Gloucestershire arts on prescription 2027",
        "commissioner_id": commissioner.id,
        "start_date": "2027-04-01",
        "end_date": "2028-03-31",
        "targets": {
            "B1": {"minimum": 40, "expected": 50, "stretch": 60},
            "C5": {"minimum": 50.5, "expected": 60, "stretch": 75},
        },
    }
    body.update(overrides)
    return body


def test_admins_create_contracts_and_commissioners_see_their_own(world, as_user):
    commissioner_user = factories.make_user(Role.COMMISSIONER)
    own = commissioner_user.organisation
    db.session.commit()
    admin = as_user(world.admin)
    response = admin.post("/contracts", contract_body(own))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert isinstance(body["id"], int)
    # Levels sent without a span are the month's (the v1 shape); stored per span.
    assert body["targets"]["C5"] == {"month": {"minimum": 50.5, "expected": 60, "stretch": 75}}
    stored = db.session.get(Contract, body["id"])
    assert stored.commissioner_id == own.id and stored.end_date == date(2028, 3, 31)

    assert admin.get("/contracts").get_json()["total"] == 2  # and the world's course contract
    mine = as_user(commissioner_user).get("/contracts").get_json()
    assert [c["id"] for c in mine["items"]] == [body["id"]]
    for role in (Role.LINK_WORKER, Role.ARTIST, Role.REFERRER):
        assert as_user(role).get("/contracts").status_code == 403
    commissioner = as_user(commissioner_user)
    assert commissioner.post("/contracts", contract_body(own, name="Mine")).status_code == 403


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"end_date": "2027-03-31"}, {"end_date"}),
        ({"start_date": "2027-13-01"}, {"start_date"}),
        ({"name": ""}, {"name"}),
        ({"commissioner_id": 999_999}, {"commissioner_id"}),
        ({"targets": {"Z9": {"minimum": 1, "expected": 2, "stretch": 3}}}, {"targets.Z9"}),
        ({"targets": {"B1": {"minimum": 40, "expected": 50}}}, {"targets.B1.month.stretch"}),
        (
            {"targets": {"B1": {"minimum": 40, "expected": "50", "stretch": 60}}},
            {"targets.B1.month.expected"},
        ),
        (
            {"targets": {"B1": {"minimum": 50, "expected": 20, "stretch": 30}}},
            {"targets.B1.month.expected"},
        ),
        (
            {"targets": {"B1": {"minimum": -1, "expected": 20, "stretch": 30}}},
            {"targets.B1.month.minimum"},
        ),
        # v2: KPIs that are not rated take no target.
        ({"targets": {"C2": {"minimum": 10, "expected": 20, "stretch": 30}}}, {"targets.C2"}),
        # A count of people from 1 to 7 would rate a suppressed cell.
        (
            {"targets": {"B2": {"month": {"minimum": 3, "expected": 5, "stretch": 10}}}},
            {"targets.B2.month.minimum", "targets.B2.month.expected"},
        ),
        # Impossible percentages (the audit's 150-250 % attendance target).
        (
            {"targets": {"B6": {"minimum": 150, "expected": 200, "stretch": 250}}},
            {"targets.B6.month.minimum", "targets.B6.month.expected", "targets.B6.month.stretch"},
        ),
        # Lower is better for A2: its levels run downwards.
        (
            {"targets": {"A2": {"minimum": 10, "expected": 15, "stretch": 20}}},
            {"targets.A2.month.expected"},
        ),
        (
            {"targets": {"A1": {"year_to_date": {"minimum": 8, "expected": 9, "stretch": 10}}}},
            {"targets.A1.year_to_date"},
        ),
        ({"targets": {"B1": 40}}, {"targets.B1"}),
        ({"targets": [1, 2]}, {"targets"}),
        ({"budget": 100}, {"budget"}),
        ({"start_date": "0001-01-01", "end_date": "9999-12-31"}, {"start_date"}),
        ({"start_date": "1999-12-31"}, {"start_date"}),
        ({"start_date": "2027-04-01", "end_date": "2037-04-01"}, {"end_date"}),
        ({"start_date": "9990-01-01", "end_date": "9999-12-31"}, {"start_date"}),
    ],
)
def test_bad_contracts_are_422_at_the_field(world, as_user, overrides, fields):
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    db.session.commit()
    contracts = count(Contract)
    response = as_user(world.admin).post("/contracts", contract_body(commissioner, **overrides))
    assert response.status_code == 422, response.get_json()
    assert problem_fields(response) == fields
    assert count(Contract) == contracts


def test_a_contract_needs_a_commissioner_and_a_new_name(world, as_user):
    admin = as_user(world.admin)
    response = admin.post("/contracts", contract_body(world.provider))
    assert problem_fields(response) == {"commissioner_id"}
    taken = contract_body(world.course.contract.commissioner, name=world.course.contract.name)
    assert problem_fields(admin.post("/contracts", taken)) == {"name"}
    non_finite = '{"name": "N", "commissioner_id": 1, "start_date": "2027-01-01", ' + (
        '"end_date": "2027-02-01", "targets": {"B1": {"minimum": NaN, "expected": 1, '
        '"stretch": Infinity}}}'
    )
    response = admin.send("POST", "/contracts", raw=non_finite)
    assert response.status_code == 422
    assert {"targets.B1.month.minimum", "targets.B1.month.stretch"} <= problem_fields(response)


@pytest.mark.parametrize(
    "raw",
    ["", "not json", "[]", "1", "null", '"text"', "[" * 5000 + "]" * 5000, '{"a": 1'],
)
def test_malformed_bodies_are_422_on_every_write_endpoint(world, as_user, register, raw):
    session, people = register
    admin = as_user(world.admin)
    for method, path in (
        ("POST", "/courses"),
        ("POST", f"/courses/{world.course.id}/enrolments"),
        ("POST", f"/enrolments/{people[0].id}/withdraw"),
        ("PUT", f"/sessions/{session.id}/register"),
        ("PATCH", f"/sessions/{session.id}"),
        ("POST", f"/enrolments/{people[0].id}/wellbeing"),
        ("POST", "/contracts"),
    ):
        response = admin.send(method, path, raw=raw)
        assert response.status_code == 422, (method, path, response.status_code)
        assert problem_fields(response) == {"body"}
        form = admin.client.open(API + path, method=method, data={"a": "1"}, headers=admin.headers)
        assert form.status_code == 422, (method, path)


def test_the_openapi_document_describes_the_course_endpoints(world, as_user):
    document = as_user(world.artist).get("/openapi.json").get_json()
    paths = document["paths"]
    assert set(paths["/sessions/{session_id}/register"]) == {"get", "put"}
    assert set(paths["/contracts"]) == {"get", "post"}
    assert "patch" in paths["/sessions/{session_id}"]
    assert "409" in paths["/courses/{course_id}/enrolments"]["post"]["responses"]
    assert "308" in paths["/openreferral/services"]["get"]["responses"]  # moved to the open feed


def test_ids_beyond_the_database_range_are_404(world, as_user, register):
    huge = 10**20
    admin = as_user(world.admin)
    for path in (
        f"/courses/{huge}",
        f"/courses/{huge}/sessions",
        f"/enrolments/{huge}",
        f"/sessions/{huge}/register",
    ):
        assert admin.get(path).status_code == 404, path
    assert admin.post(f"/courses/{huge}/enrolments", {"referral_id": 1}).status_code == 404
    assert admin.post(f"/enrolments/{huge}/withdraw", {"reason": "x"}).status_code == 404
    assert admin.send("PUT", f"/sessions/{huge}/register", {"entries": []}).status_code == 404
    cancel = {"status": "cancelled", "reason": "x"}
    assert admin.send("PATCH", f"/sessions/{huge}", cancel).status_code == 404
    body = {"instrument": "SWEMWBS", "timepoint": "end", "items": [3] * 7}
    assert admin.post(f"/enrolments/{huge}/wellbeing", body).status_code == 404


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("title", "Sing\x00ing", "title"),
        ("venue.address", "1 High St\x00", "venue.address"),
        ("schedule.start_date", "9999-12-20", "schedule.sessions"),
    ],
)
def test_values_the_database_cannot_hold_are_422(world, as_user, path, value, field):
    response = as_user(world.admin).post("/courses", _with(course_body(world), path, value))
    assert response.status_code == 422, response.get_json()
    assert field in problem_fields(response)
    assert count(Course) == 1


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ("0001-01-01", "Sessions must be on or after 1 January 2000"),
        (
            "2025-12-30",
            "Sessions must be on or after the day the contract starts (1 January 2026)",
        ),
        (
            "2028-01-04",
            "Sessions must be on or before the day the contract ends (31 December 2027); "
            "the last would be on 9 May 2028",
        ),
        (
            "2027-11-02",
            "Sessions must be on or before the day the contract ends (31 December 2027); "
            "the last would be on 21 March 2028",
        ),
    ],
)
def test_a_course_runs_inside_its_contract(world, as_user, start, message):
    """The world's contract runs through 2027: every session, not just the first, inside it."""
    body = _with(course_body(world), "schedule.start_date", start)
    response = as_user(world.admin).post("/courses", body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"] == {"schedule.start_date": [message]}
    assert count(Course) == 1


def test_enrolling_too_late_to_complete_needs_the_late_start_confirmed(world, as_user):
    today = clock.today()
    course = make_course(world.provider, start=today - timedelta(weeks=6))
    for session in course.sessions[:6]:
        save_register(world.admin, session, [], today=today)
    person = world.person()
    db.session.commit()
    link_worker = as_user(world.link_worker)
    url = f"/courses/{course.id}/enrolments"
    response = link_worker.post(url, {"referral_id": person.id})
    assert response.status_code == 409
    message = response.get_json()["errors"]["late_start_confirmed"][0]
    assert message.startswith("Only 2 of 8 sessions are left")
    response = link_worker.post(url, {"referral_id": person.id, "late_start_confirmed": "yes"})
    assert response.status_code == 422
    response = link_worker.post(url, {"referral_id": person.id, "late_start_confirmed": True})
    assert response.status_code == 201
    assert response.get_json()["status"] == "enrolled"
