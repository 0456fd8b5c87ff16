"""The generated scheme (`flask seed scale`): counts, the service's invariants, determinism."""

from __future__ import annotations

import hashlib
import itertools
from datetime import date, datetime, timedelta

import pytest
from nhs_number import REGION_SYNTHETIC
from sqlalchemy import func, select

from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.auth.services import OrganisationFields, create_organisation
from referrals.courses.models import (
    HOLDS_PLACE,
    Attendance,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.courses.progress import completion_threshold
from referrals.extensions import db
from referrals.intake.lifecycle import CLOSED_STATUSES, TRANSITIONS, Status
from referrals.intake.models import (
    ContactAttempt,
    Conversation,
    Patient,
    Referral,
    ReferralTransition,
)
from referrals.intake.validation import clean_nhs_number
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import Timepoint
from referrals.reports.kpi import compute
from referrals.reports.periods import Period, Scope
from referrals.seeding import scale
from referrals.seeding.demo import DEMO_PASSWORD
from referrals.seeding.scale import (
    MAX_GENERATED_PEOPLE,
    SIGN_INS,
    DatabaseNotEmpty,
    ScaleArgumentError,
    check_arguments,
    generated_nhs_number,
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
    assert "Planned" in result.output and "Done." in result.output  # progress as it goes
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


# --- The invariants the services keep, checked on a generated scheme ---------------------------


def test_nhs_numbers_are_valid_unique_and_never_issued(scheme):
    numbers = db.session.scalars(select(Patient.nhs_number)).all()
    assert len(numbers) == len(set(numbers)) == scheme.counts["patient"]
    synthetic = REGION_SYNTHETIC.ranges[0]
    for number in numbers:
        assert number is not None and clean_nhs_number(number) == number
        assert synthetic.start <= int(number) <= synthetic.end


def test_nhs_numbers_go_on_past_the_999_range_without_repeating():
    # The first range ends at 199,999 people; a million referrals need more.
    around = [
        *range(1, 50),
        *range(199_950, 200_050),
        *range(MAX_GENERATED_PEOPLE - 50, MAX_GENERATED_PEOPLE + 1),
    ]
    numbers = [generated_nhs_number(n) for n in around]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert clean_nhs_number(number) == number and number.startswith("9")
    assert MAX_GENERATED_PEOPLE >= 2_000_000
    with pytest.raises(ValueError, match="numbered 1 to"):
        generated_nhs_number(MAX_GENERATED_PEOPLE + 1)


def test_places_taken_stay_within_capacity_and_only_a_full_course_has_a_waiting_list(scheme):
    holding = (
        select(Enrolment.course_id, func.count().label("taken"))
        .where(Enrolment.status.in_((*HOLDS_PLACE, EnrolmentStatus.COMPLETED)))
        .group_by(Enrolment.course_id)
        .subquery()
    )
    courses = db.session.execute(
        select(Course.id, Course.capacity, func.coalesce(holding.c.taken, 0)).outerjoin(
            holding, holding.c.course_id == Course.id
        )
    ).all()
    assert courses
    over = [(course, capacity, taken) for course, capacity, taken in courses if taken > capacity]
    assert over == []
    full = {course for course, capacity, taken in courses if taken >= capacity}
    waiting = set(
        db.session.scalars(
            select(Enrolment.course_id).where(Enrolment.status == EnrolmentStatus.WAITLISTED)
        )
    )
    assert waiting <= full
    # One enrolment per referral in the generated scheme, made no later than the course began.
    per_referral = db.session.execute(
        select(Enrolment.referral_id, func.count()).group_by(Enrolment.referral_id)
    ).all()
    assert all(count == 1 for _referral, count in per_referral)
    starts = db.session.execute(
        select(Enrolment.created_at, Course.start_date).join(
            Course, Course.id == Enrolment.course_id
        )
    ).all()
    assert all(created_at.date() < start for created_at, start in starts)


def test_attendance_is_recorded_only_for_people_on_the_course_after_they_joined(scheme):
    rows = db.session.execute(
        select(Enrolment.enrolled_at, Enrolment.status, CourseSession.date, Attendance.recorded_at)
        .join(Enrolment, Enrolment.id == Attendance.enrolment_id)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
    ).all()
    assert len(rows) == ATTENDANCES
    for enrolled_at, status, day, recorded_at in rows:
        assert status is not EnrolmentStatus.WAITLISTED and enrolled_at is not None
        assert enrolled_at.date() <= day < TODAY
        assert recorded_at.date() >= day
    # Nobody is recorded twice at one session (the table's constraint says so too).
    pairs = db.session.execute(select(Attendance.session_id, Attendance.enrolment_id)).all()
    assert len(pairs) == len(set(pairs))


def test_completions_follow_the_completion_rule(scheme):
    delivered = (
        select(CourseSession.course_id, func.count().label("delivered"))
        .where(CourseSession.status == SessionStatus.DELIVERED)
        .group_by(CourseSession.course_id)
        .subquery()
    )
    attended = (
        select(Attendance.enrolment_id, func.count().label("attended"))
        .where(Attendance.status == AttendanceStatus.ATTENDED)
        .group_by(Attendance.enrolment_id)
        .subquery()
    )
    completions = db.session.execute(
        select(Enrolment.id, delivered.c.delivered, func.coalesce(attended.c.attended, 0))
        .join(delivered, delivered.c.course_id == Enrolment.course_id)
        .outerjoin(attended, attended.c.enrolment_id == Enrolment.id)
        .where(Enrolment.status == EnrolmentStatus.COMPLETED)
    ).all()
    assert completions
    for _enrolment, sessions, came in completions:
        assert came >= completion_threshold(sessions)
    # A course's sessions are numbered in date order, delivered only before today.
    sessions = db.session.execute(
        select(CourseSession.course_id, CourseSession.date, CourseSession.status).order_by(
            CourseSession.course_id, CourseSession.sequence
        )
    ).all()
    for (course, day, _status), (next_course, next_day, _next) in itertools.pairwise(sessions):
        assert course != next_course or day < next_day
    assert all(
        (status is SessionStatus.DELIVERED) <= (day < TODAY) for _course, day, status in sessions
    )


def test_each_referrals_steps_are_recorded_in_order(scheme):
    referrals = {r.id: r for r in db.session.scalars(select(Referral))}
    contacts: dict[int, list[datetime]] = {}
    for referral_id, at in db.session.execute(
        select(ContactAttempt.referral_id, ContactAttempt.at).order_by(ContactAttempt.id)
    ):
        contacts.setdefault(referral_id, []).append(at)
    conversations = dict(
        db.session.execute(select(Conversation.referral_id, Conversation.held_on)).all()
    )
    enrolled = dict(db.session.execute(select(Enrolment.referral_id, Enrolment.created_at)).all())
    reached_contact = {
        step.referral_id
        for step in db.session.scalars(
            select(ReferralTransition).where(ReferralTransition.to_status == Status.CONTACTING)
        )
    }
    for referral in referrals.values():
        assert referral.received_on <= TODAY
        if referral.closed_on is not None:
            assert referral.received_on <= referral.closed_on <= TODAY
        times = contacts.get(referral.id, [])
        assert times == sorted(times)
        assert (referral.id in reached_contact) == bool(times)
        if times:
            assert referral.first_contact_at == times[0]
            assert referral.received_on <= times[0].date()
        held_on = conversations.get(referral.id)
        if held_on is not None:
            assert times and times[-1].date() <= held_on
        if referral.id in enrolled:
            # Matched to a course only after the "what matters" conversation.
            assert held_on is not None and held_on <= enrolled[referral.id].date()
    # A person's later referral arrives after the earlier one closed.
    by_person: dict[int, list[Referral]] = {}
    for referral in sorted(referrals.values(), key=lambda r: (r.received_on, r.id)):
        by_person.setdefault(referral.patient_id, []).append(referral)
    for history in by_person.values():
        for earlier, later in itertools.pairwise(history):
            assert earlier.closed_on is not None and earlier.closed_on <= later.received_on


def test_questionnaires_belong_to_people_who_came_baseline_first(scheme):
    rows = db.session.execute(
        select(
            WellbeingAssessment.enrolment_id,
            WellbeingAssessment.timepoint,
            WellbeingAssessment.recorded_on,
            WellbeingAssessment.items,
            WellbeingAssessment.raw_score,
        )
    ).all()
    assert rows
    came = set(
        db.session.scalars(
            select(Attendance.enrolment_id).where(Attendance.status == AttendanceStatus.ATTENDED)
        )
    )
    baselines: dict[int, date] = {}
    for enrolment, timepoint, day, items, raw in rows:
        assert enrolment in came and day < TODAY
        assert len(items) == 7 and sum(items) == raw
        if timepoint is Timepoint.BASELINE:
            assert enrolment not in baselines
            baselines[enrolment] = day
    for enrolment, timepoint, day, _items, _raw in rows:
        if timepoint is Timepoint.END:
            assert enrolment in baselines and baselines[enrolment] <= day


# --- Arguments, batches and progress -----------------------------------------------------------


def test_impossible_arguments_are_refused_before_anything_is_written(runner, app):
    for arguments, message in (
        (["--referrals", "10", "--attendances", "1000"], "at most 120 attendance"),
        (["--referrals", str(MAX_GENERATED_PEOPLE + 1)], "referrals must be between"),
    ):
        result = runner.invoke(args=["seed", "scale", *arguments])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert db.session.scalar(select(func.count(Organisation.id))) == 0
    check_arguments(1_000_000, 10_000_000)  # the scale the benchmarks ask for is allowed
    with pytest.raises(ScaleArgumentError):
        seed_scale(0, 0, today=TODAY)


def test_progress_is_reported_and_every_batch_is_committed(app, monkeypatch):
    monkeypatch.setattr(scale, "CHUNK_ROWS", 500)
    heard: list[str] = []
    seed_scale(120, 900, seed=3, today=TODAY, progress=heard.append)
    # Nothing is left for the caller to commit: another connection sees every row.
    db.session.remove()
    with db.engine.connect() as connection:
        assert connection.scalar(select(func.count(Attendance.id))) == 900
    assert "Planned" in heard[0]
    assert heard[-1].endswith("Done.")
    assert any("courses and" in line and "sessions" in line for line in heard)
