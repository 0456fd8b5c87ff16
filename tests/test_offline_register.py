"""The installable register: what an artist's phone is given to keep, and registers sent from
it later (once, through the register rules, never over someone else's save unseen)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role, User
from referrals.courses.models import Attendance, AttendanceStatus, Course, CourseSession
from referrals.courses.register_rules import RegisterEntry
from referrals.courses.services import enrol, save_register
from referrals.extensions import db
from referrals.outcomes.models import WellbeingAssessment
from tests import factories
from tests.course_helpers import assessed_referral
from tests.factories import make_course


def london_today() -> Any:
    return clock.today()


def _course(start: Any, title: str = "Clay Together") -> tuple[Any, Course, list[Any]]:
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    link_worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(provider, start=start, title=title)
    people = [
        enrol(
            link_worker,
            assessed_referral(link_worker, given_name=given, family_name="Okafor"),
            course,
            today=start,
        )
        for given in ("Ada", "Bea")
    ]
    db.session.commit()
    return provider, course, people


def _artist(login_as: Any, provider: Any) -> FlaskClient:
    client: FlaskClient = login_as(Role.ARTIST, organisation=provider)
    return client


def _kept(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/sessions/offline")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return dict(response.get_json())


def _send(
    client: FlaskClient,
    session: CourseSession,
    body: dict[str, Any],
    *,
    key: str = "register-key-1",
    token: str | None = None,
) -> Any:
    token = token if token is not None else _kept(client)["csrf_token"]
    return client.post(
        f"/sessions/{session.id}/register/send",
        data=json.dumps(body),
        content_type="application/json",
        headers={"X-CSRFToken": token, "Idempotency-Key": key},
    )


def _register(people: list[Any], version: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "based_on": version,
        "entries": [
            {"enrolment_id": people[0].id, "status": "attended", "mood_before": 4, "mood_after": 7},
            {"enrolment_id": people[1].id, "status": "apologies", "note": "Poorly"},
        ],
        **extra,
    }


def _sent_count(session: CourseSession) -> int:
    return db.session.scalar(
        select(func.count()).where(
            AuditEvent.action == "register.sent_from_device",
            AuditEvent.object_id == str(session.id),
        )
    )


def test_the_phone_keeps_the_next_seven_days_of_its_own_registers_and_no_clinical_detail(
    app, login_as
):
    today = london_today()
    provider, course, people = _course(today)
    _other_provider, other_course, _ = _course(today, title="Someone else's course")
    client = _artist(login_as, provider)
    people[0].referral.patient.access_needs = "Step-free access"
    db.session.commit()

    kept = _kept(client)

    dates = [s["date"] for s in kept["sessions"]]
    assert dates and all(
        today.isoformat() <= d <= (today + timedelta(days=7)).isoformat() for d in dates
    )
    assert {s["course_title"] for s in kept["sessions"]} == {course.title}
    assert not any(s.id == kept["sessions"][0]["id"] for s in other_course.sessions)
    first = kept["sessions"][0]
    assert first["id"] == course.sessions[0].id and first["version"] == ""
    ada = first["people"][0]
    assert ada["name"] == "Ada Okafor" and ada["needs"] == "Step-free access"
    assert ada["questionnaire"] == {"timepoint": "baseline", "label": "Baseline (start of course)"}
    body = json.dumps(kept)
    patient = people[0].referral.patient
    assert patient.nhs_number not in body
    assert people[0].referral.reason not in body
    assert kept["csrf_token"] and kept["valid_until"]


def test_a_register_sent_from_the_phone_is_saved_once_with_its_questionnaire(app, login_as):
    today = london_today()
    provider, course, people = _course(today)
    session = course.sessions[0]
    client = _artist(login_as, provider)
    body = _register(
        people,
        questionnaires=[
            {"enrolment_id": people[0].id, "timepoint": "baseline", "items": [3, 4, 3, 3, 4, 3, 3]}
        ],
    )

    first = _send(client, session, body)
    again = _send(client, session, body)  # the answer was lost: the phone sends it again

    assert first.status_code == 200, first.get_json()
    assert first.get_json()["message"].endswith("sent: 1 of 2 attended")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert _sent_count(session) == 1
    marks = {a.enrolment_id: a.status for a in db.session.scalars(select(Attendance))}
    assert marks == {
        people[0].id: AttendanceStatus.ATTENDED,
        people[1].id: AttendanceStatus.APOLOGIES,
    }
    scores = db.session.scalars(select(WellbeingAssessment)).all()
    assert [(s.enrolment_id, s.raw_score, s.recorded_on) for s in scores] == [
        (people[0].id, 23, session.date)
    ]
    # The same key with different marks is not a resend: it is refused, nothing changes.
    changed = _send(client, session, _register(people[::-1]))
    assert changed.status_code == 422
    assert _sent_count(session) == 1


def test_a_register_saved_by_someone_else_meanwhile_is_not_overwritten(app, login_as):
    today = london_today()
    provider, course, people = _course(today)
    session = course.sessions[0]
    client = _artist(login_as, provider)
    version = _kept(client)["sessions"][0]["version"]
    admin = factories.make_user(Role.ADMIN)
    save_register(
        admin,
        session,
        [
            RegisterEntry(people[0].id, AttendanceStatus.NO_SHOW),
            RegisterEntry(people[1].id, AttendanceStatus.APOLOGIES),
        ],
        today=today,
    )
    db.session.commit()

    response = _send(client, session, _register(people, version))

    assert response.status_code == 409
    answer = response.get_json()
    assert answer["status"] == "changed"
    assert answer["differences"] == [
        {
            "enrolment_id": str(people[0].id),
            "name": "Ada Okafor",
            "yours": "Attended, mood 4 to 7",
            "saved": "No show",
        },
        {
            "enrolment_id": str(people[1].id),
            "name": "Bea Okafor",
            "yours": "Apologies, note: Poorly",
            "saved": "Apologies",
        },
    ]
    db.session.expire_all()
    assert (
        db.session.scalar(select(Attendance.status).where(Attendance.enrolment_id == people[0].id))
        is AttendanceStatus.NO_SHOW
    )
    # The artist chose theirs: sent again from the version they have now seen.
    chosen = _send(client, session, _register(people, answer["version"]))
    assert chosen.status_code == 200
    db.session.expire_all()
    assert (
        db.session.scalar(select(Attendance.status).where(Attendance.enrolment_id == people[0].id))
        is AttendanceStatus.ATTENDED
    )


def test_the_register_rules_and_the_edit_window_apply_to_registers_from_the_phone(app, login_as):
    today = london_today()
    provider, course, people = _course(today - timedelta(days=21))
    for enrolment in people:  # on the course from its first session
        enrolment.enrolled_at = datetime.combine(course.sessions[0].date, time(9), tzinfo=UTC)
    db.session.commit()
    client = _artist(login_as, provider)
    old = course.sessions[0]  # three weeks ago: past the artist's 7 days
    recent = next(s for s in course.sessions if 0 <= (today - s.date).days <= 7)

    late = _send(client, old, _register(people), key="late")
    mood_for_apologies = _register(people)
    mood_for_apologies["entries"][1]["mood_before"] = 5
    refused = _send(client, recent, mood_for_apologies, key="rules")

    assert late.status_code == 409
    assert late.get_json() == {
        "status": "refused",
        "message": (
            "Registers can be changed for 7 days after the session. Ask an admin to correct it"
        ),
    }
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {
        "entries.1.mood_before": ["Moods are only recorded for people who attended (Bea Okafor)"]
    }
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 0


def test_sending_needs_the_form_token_and_an_idempotency_key(app, login_as):
    today = london_today()
    provider, course, people = _course(today)
    session = course.sessions[0]
    client = _artist(login_as, provider)

    without_token = _send(client, session, _register(people), token="")
    without_key = _send(client, session, _register(people), key="")

    assert without_token.status_code == 400
    assert without_key.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 0


def test_manifest_service_worker_and_sign_out(app, login_as):
    provider, _course_row, _people = _course(london_today())
    client = _artist(login_as, provider)
    page = client.get("/sessions/").get_data(as_text=True)
    assert '<link rel="manifest" href="/manifest.webmanifest" data-offline-registers>' in page
    manifest = client.get("/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json"
    assert manifest.get_json()["start_url"] == "/sessions/"
    worker = client.get("/service-worker.js")
    assert worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/"

    from tests.conftest import csrf_token

    signed_out = client.post("/sign-out", data={"csrf_token": csrf_token(client, "/sessions/")})
    assert signed_out.headers["Clear-Site-Data"] == '"cache", "storage"'
    # Other staff are not offered the app.
    link_worker = login_as(Role.LINK_WORKER)
    assert "data-offline-registers" not in link_worker.get("/").get_data(as_text=True)


def test_keeping_the_saved_register_still_records_the_questionnaires(app, login_as):
    today = london_today()
    provider, course, people = _course(today)
    session = course.sessions[0]
    client = _artist(login_as, provider)
    admin = factories.make_user(Role.ADMIN)
    save_register(
        admin, session, [RegisterEntry(people[0].id, AttendanceStatus.NO_SHOW)], today=today
    )
    db.session.commit()
    questionnaire = {"enrolment_id": people[0].id, "timepoint": "baseline", "items": [3] * 7}
    version = _kept(client)["sessions"][0]["version"]

    # Without entries: the questionnaires alone, the register saved on the server untouched.
    kept = _send(client, session, {"based_on": version, "questionnaires": [questionnaire]})
    again = _send(client, session, {"based_on": version, "questionnaires": [questionnaire]})
    nothing = _send(client, session, {"based_on": version}, key="empty")

    assert kept.status_code == 200, kept.get_json()
    assert kept.get_json()["message"].endswith("sent; the saved register stays as it is")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert nothing.status_code == 422
    assert nothing.get_json()["errors"] == {
        "entries": ["Give the register's entries, or the questionnaires to send"]
    }
    db.session.expire_all()
    assert db.session.scalars(select(Attendance.status)).all() == [AttendanceStatus.NO_SHOW]
    scores = db.session.scalars(select(WellbeingAssessment)).all()
    assert [(s.enrolment_id, s.raw_score) for s in scores] == [(people[0].id, 21)]
    assert _sent_count(session) == 1


def test_an_artist_taken_off_a_course_no_longer_keeps_its_registers(app, login_as):
    today = london_today()
    provider, course, _people = _course(today)
    client = _artist(login_as, provider)
    artist = db.session.scalars(
        select(User).where(User.role == Role.ARTIST, User.organisation_id == provider.id)
    ).one()
    course.lead_artists = [artist]
    db.session.commit()
    assert {s["course_title"] for s in _kept(client)["sessions"]} == {course.title}

    course.lead_artists = [factories.make_user(Role.ARTIST, organisation=provider)]
    db.session.commit()

    assert _kept(client)["sessions"] == []
