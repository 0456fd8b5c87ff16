"""The generated scheme (`flask seed scale`): counts, the service's invariants, determinism."""

from __future__ import annotations

import hashlib
import itertools
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from referrals.auth.models import OrganisationKind, Role, User
from referrals.auth.services import OrganisationFields, create_organisation
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.extensions import db
from referrals.intake.lifecycle import CLOSED_STATUSES, TRANSITIONS, Status
from referrals.intake.models import Patient, Referral, ReferralTransition
from referrals.reports.kpi import compute
from referrals.reports.periods import Period, Scope
from referrals.seeding.demo import DEMO_PASSWORD
from referrals.seeding.scale import (
    SIGN_INS,
    DatabaseNotEmpty,
    scale_bench_targets,
    seed_scale,
)
from tests.conftest import _empty_all_tables, sign_in

TODAY = date(2026, 3, 11)  # a Wednesday
REFERRALS, ATTENDANCES = 300, 2_500


@pytest.fixture()
def scheme(app):
    report = seed_scale(REFERRALS, ATTENDANCES, seed=7, today=TODAY)
    db.session.commit()
    return report


def test_counts_are_the_ones_asked_for_and_reported(scheme):
    assert db.session.scalar(select(func.count(Referral.id))) == REFERRALS
    assert db.session.scalar(select(func.count(Attendance.id))) == ATTENDANCES
    for table in ("referral", "attendance", "patient", "enrolment", "course_session"):
        rows = db.session.scalar(select(func.count()).select_from(db.metadata.tables[table]))
        assert scheme.counts[table] == rows
    assert scheme.seconds > 0
    people = db.session.scalar(select(func.count(Patient.id)))
    assert people < REFERRALS  # some people come back with a new referral
    assert {role for role in Role} == {Role(role) for role in scheme.sign_ins}


def test_new_rows_after_the_scheme_get_fresh_ids(scheme):
    # PostgreSQL sequences are moved past the ids the generator chose.
    practice = create_organisation(
        None, OrganisationFields("New Practice", OrganisationKind.GP_PRACTICE, "Y99999")
    )
    db.session.add(Venue(name="New Hall", address="1 Road", postcode="NM1 1AA"))
    db.session.flush()
    assert practice.id == scheme.counts["organisation"] + 1
    db.session.commit()


def test_every_attendance_is_for_an_enrolment_on_a_delivered_session_of_its_course(scheme):
    mismatched = db.session.scalar(
        select(func.count())
        .select_from(Attendance)
        .join(Enrolment, Enrolment.id == Attendance.enrolment_id)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .where(
            (Enrolment.course_id != CourseSession.course_id)
            | (CourseSession.status != SessionStatus.DELIVERED)
            | (CourseSession.date >= TODAY)
            | (Enrolment.status == EnrolmentStatus.WAITLISTED)
        )
    )
    assert mismatched == 0
    # Moods only for people who came, within 0-10 (the table's checks enforce the range).
    assert not db.session.scalar(
        select(func.count()).where(
            Attendance.status != AttendanceStatus.ATTENDED, Attendance.mood_before.is_not(None)
        )
    )


def test_lifecycle_histories_follow_the_transition_table(scheme):
    history: dict[int, list[ReferralTransition]] = {}
    for step in db.session.scalars(select(ReferralTransition).order_by(ReferralTransition.id)):
        history.setdefault(step.referral_id, []).append(step)
    referrals = db.session.scalars(select(Referral)).all()
    seen = set()
    for referral in referrals:
        steps = history[referral.id]
        assert steps[0].from_status is None and steps[0].to_status is Status.RECEIVED
        assert steps[0].effective_on == referral.received_on
        for before, after in itertools.pairwise(steps):
            assert after.from_status is before.to_status
            assert (after.from_status, after.to_status) in TRANSITIONS
            assert after.effective_on >= before.effective_on
            if TRANSITIONS[(after.from_status, after.to_status)].needs_reason:
                assert after.reason
        assert steps[-1].to_status is referral.status
        assert referral.status_changed_at == steps[-1].at
        assert (referral.closed_on is not None) == (referral.status in CLOSED_STATUSES)
        assert steps[-1].effective_on <= TODAY
        seen.add(referral.status)
    # History mostly closed, with every stage of an open referral still represented.
    assert {Status.COMPLETED, Status.WITHDRAWN, Status.STARTED, Status.ENROLLED} <= seen
    closed = sum(1 for r in referrals if r.status in CLOSED_STATUSES)
    assert closed > 0.8 * REFERRALS


def test_enrolments_match_their_referrals_status(scheme):
    pairs = db.session.execute(
        select(Enrolment.status, Referral.status).join(
            Referral, Referral.id == Enrolment.referral_id
        )
    ).all()
    allowed = {
        EnrolmentStatus.COMPLETED: {Status.COMPLETED},
        EnrolmentStatus.ENROLLED: {Status.ENROLLED, Status.STARTED},
        EnrolmentStatus.WAITLISTED: {Status.WAITLISTED},
        EnrolmentStatus.WITHDRAWN: {Status.WITHDRAWN, Status.DID_NOT_START},
    }
    assert pairs
    for enrolment_status, referral_status in pairs:
        assert referral_status in allowed[enrolment_status]


def test_the_link_workers_referrals_are_on_their_caseload(scheme, app):
    targets = scale_bench_targets(TODAY)
    client = app.test_client()
    assert sign_in(client, SIGN_INS[Role.LINK_WORKER], DEMO_PASSWORD).status_code == 302
    referral = db.session.get(Referral, targets.referral_id)
    assert referral is not None and referral.assigned_to_id == targets.link_worker_id
    page = client.get(f"/referrals/?mine=1&status={referral.status.value}")
    assert page.status_code == 200
    assert f"/referrals/{targets.referral_id}" in page.get_data(as_text=True)
    assert client.get(f"/referrals/{targets.referral_id}").status_code == 200


def test_bench_targets_name_a_register_taken_today(scheme, app):
    targets = scale_bench_targets(TODAY)
    session = db.session.get(CourseSession, targets.session_id)
    assert session is not None and session.date == TODAY
    assert session.status is SessionStatus.PLANNED
    course = db.session.get(Course, targets.course_id)
    assert course is not None
    assert targets.artist_id in {artist.id for artist in course.lead_artists}
    assert targets.register_size >= 20
    assert course.contract_id == targets.contract_id
    # The commissioner has a year of finished months under the contract to report on.
    assert (
        course.contract.start_date
        <= TODAY - timedelta(days=365)
        < TODAY
        <= course.contract.end_date
    )
    assert (
        course.contract.commissioner_id
        == db.session.get(User, targets.commissioner_id).organisation_id
    )
    for role, email in SIGN_INS.items():
        user = db.session.scalar(select(User).where(User.email == email))
        assert user is not None and user.role is role


def test_a_kpi_month_computes_from_the_generated_history(scheme):
    targets = scale_bench_targets(TODAY)
    period = Period.parse("2026-02")  # the bench course met every week of it
    result = compute(Scope(targets.contract_id), period)
    received = db.session.scalar(
        select(func.count()).where(
            Referral.received_on >= period.start, Referral.received_on <= period.end
        )
    )
    assert result.get("A1").value == received
    assert result.get("B4").value > 0  # sessions delivered under the contract
    everything = compute(Scope(None), period)
    assert everything.get("B5").value >= result.get("B5").value > 0


def test_the_command_refuses_a_database_with_data(runner, scheme):
    result = runner.invoke(args=["seed", "scale", "--referrals", "10", "--attendances", "10"])
    assert result.exit_code != 0
    assert "already holds data" in result.output
    assert db.session.scalar(select(func.count(Referral.id))) == REFERRALS
    with pytest.raises(DatabaseNotEmpty):
        seed_scale(10, 10, today=TODAY)


def test_the_command_prints_counts_time_and_sign_ins(runner, app):
    result = runner.invoke(args=["seed", "scale", "--referrals", "60", "--attendances", "400"])
    assert result.exit_code == 0, result.output
    assert "referral" in result.output and "Generated in" in result.output
    for email in SIGN_INS.values():
        assert email in result.output
    assert db.session.scalar(select(func.count(Referral.id))) == 60


def _digest() -> str:
    digest = hashlib.sha256()
    for model in (Patient, Referral, ReferralTransition, Enrolment, Attendance):
        columns = [c for c in model.__table__.c if c.name not in ("created_at", "updated_at")]
        for row in db.session.execute(select(*columns).order_by(model.__table__.c.id)):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def test_the_same_seed_makes_the_same_scheme(app):
    seed_scale(120, 900, seed=11, today=TODAY)
    db.session.commit()
    first = _digest()
    db.session.remove()
    _empty_all_tables()
    seed_scale(120, 900, seed=11, today=TODAY)
    db.session.commit()
    assert _digest() == first
    db.session.remove()
    _empty_all_tables()
    seed_scale(120, 900, seed=12, today=TODAY)
    db.session.commit()
    assert _digest() != first
