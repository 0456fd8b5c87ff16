"""The demo scheme's courses: a living year of terms, registers and questionnaires, made through
the course services and consistent with the KPI rules."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from dateutil.relativedelta import relativedelta
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from referrals.auth.models import User
from referrals.courses import rules
from referrals.courses.kpi_targets import check_targets
from referrals.courses.models import (
    HOLDS_PLACE,
    Attendance,
    AttendanceStatus,
    Contract,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
)
from referrals.courses.progress import completion_threshold
from referrals.courses.queries import sessions_for_user
from referrals.courses.rules import OFFER_REPLY_DAYS
from referrals.courses.services import attendance_counts, course_end, register_enrolments
from referrals.extensions import db
from referrals.intake.lifecycle import TRANSITIONS, Status
from referrals.intake.models import Referral, ReferralTransition
from referrals.notifications.models import Notification
from referrals.notifications.services import inbox_query, unread_count
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import SWEMWBS_METRIC, Instrument, Timepoint
from referrals.seeding.demo import seed_demo
from referrals.seeding.demo_courses import (
    COURSES,
    LEAD_ARTISTS,
    UNREAD_DAYS,
    place_freed_at,
    plan_demo_scheme,
)
from referrals.seeding.demo_referrals import (
    LONDON,
    PlannedContact,
    PlannedConversation,
    PlannedMove,
    PlannedReferral,
    last_planned_day,
)
from referrals.vocab import ContactMethod
from tests.conftest import _empty_all_tables

DATES = [date(2026, 3, 16), date(2025, 10, 9)]
MATCHED = {Status.ENROLLED, Status.WAITLISTED, Status.STARTED, Status.COMPLETED}


@pytest.fixture(scope="module", params=DATES, ids=str)
def today(_migrated_app: Flask, request: pytest.FixtureRequest) -> Iterator[date]:
    """The demo scheme seeded once per date, shared by the tests of this module."""
    with _migrated_app.app_context():
        seed_demo(today=request.param)
        db.session.commit()
        yield request.param
        db.session.remove()
        _empty_all_tables()


def _base_title(course: Course) -> str:
    return re.sub(r" \([A-Z][a-z]+ \d{4}\)$", "", course.title)


def _courses() -> list[Course]:
    return list(
        db.session.scalars(
            select(Course).options(
                selectinload(Course.sessions),
                selectinload(Course.provider),
                selectinload(Course.venue),
                selectinload(Course.contract),
                selectinload(Course.lead_artists),
                selectinload(Course.enrolments),
            )
        )
    )


def _attended() -> dict[int, list[date]]:
    """Dates of delivered sessions each enrolment attended."""
    rows = db.session.execute(
        select(Attendance.enrolment_id, CourseSession.date)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .where(
            Attendance.status == AttendanceStatus.ATTENDED,
            CourseSession.status == SessionStatus.DELIVERED,
        )
    )
    attended: dict[int, list[date]] = defaultdict(list)
    for enrolment_id, day in rows:
        attended[enrolment_id].append(day)
    return attended


def test_twelve_courses_run_term_after_term_for_a_year(today: date) -> None:
    courses = _courses()
    titles = {_base_title(c) for c in courses}
    assert titles == {c.title for c in COURSES.values()} and len(titles) >= 12
    assert {c.provider.name for c in courses} == set(LEAD_ARTISTS)
    for title in titles:
        assert sum(_base_title(c) == title for c in courses) >= 2, title

    delivered = db.session.scalars(
        select(CourseSession.date).where(CourseSession.status == SessionStatus.DELIVERED)
    ).all()
    assert max(delivered) < today
    months = Counter(d.strftime("%Y-%m") for d in delivered)
    this_month = today.replace(day=1)
    for back in range(1, 13):
        month = (this_month - relativedelta(months=back)).strftime("%Y-%m")
        assert months[month] >= 5, month
    delivered_titles = {
        _base_title(c)
        for c in courses
        if any(s.status is SessionStatus.DELIVERED for s in c.sessions)
    }
    assert len(delivered_titles) >= 10

    # Terms running now and coming up, with no register left untaken in the past.
    assert any(c.sessions[0].date <= today <= c.sessions[-1].date for c in courses)
    assert any(c.sessions[0].date > today for c in courses)
    assert not db.session.scalar(
        select(func.count()).where(
            CourseSession.status == SessionStatus.PLANNED, CourseSession.date < today
        )
    )
    cancelled = db.session.scalars(
        select(CourseSession).where(CourseSession.status == SessionStatus.CANCELLED)
    ).all()
    assert 5 <= len(cancelled) <= 25 and all(s.cancelled_reason for s in cancelled)
    # One term could not run at all.
    assert any(all(s.status is SessionStatus.CANCELLED for s in c.sessions) for c in courses)


def test_courses_contracts_and_venues_are_complete(today: date) -> None:
    contracts = db.session.scalars(select(Contract).options(selectinload(Contract.commissioner)))
    by_commissioner = {c.commissioner.name: c for c in contracts}
    assert set(by_commissioner) == {
        "NHS Severnvale Integrated Care Board",
        "Severnshire County Council Public Health",
    }
    year_ago = today.replace(day=1) - relativedelta(months=12)
    for contract in by_commissioner.values():
        assert contract.start_date <= year_ago and contract.end_date > today + timedelta(days=90)
        # Targets per span that the targets rule accepts (KPI spec v2): outcomes pooled over
        # the year to date.
        assert {"B1", "B2", "B4", "B6", "C5"} <= set(contract.targets)
        assert check_targets(contract.targets) == contract.targets
        assert "year_to_date" in contract.targets["C5"]

    for course in _courses():
        assert 6 <= course.capacity <= 15
        assert 2500 <= course.cost_per_session_pence <= 4000
        assert course.pathways and course.description
        assert [a.email for a in course.lead_artists] == [LEAD_ARTISTS[course.provider.name]]
        assert all(a.organisation_id == course.provider_id for a in course.lead_artists)
        assert course.contract.start_date <= course.sessions[0].date
        assert course.sessions[-1].date <= course.contract.end_date
        assert re.fullmatch(r"GL\d{1,2} \d[A-Z]{2}", course.venue.postcode)
        assert course.venue.accessibility
        assert len(course.sessions) == course.session_count
        # Terms over Christmas take a break rather than meet on the holidays.
        assert not any(
            (s.date.month, s.date.day) in {(12, 25), (12, 26), (1, 1)} for s in course.sessions
        )


def test_every_matched_referral_holds_a_matching_enrolment(today: date) -> None:
    attended = _attended()
    referrals = db.session.scalars(
        select(Referral).options(selectinload(Referral.transitions))
    ).all()
    enrolments: dict[int, list[Enrolment]] = defaultdict(list)
    for enrolment in db.session.scalars(select(Enrolment)):
        enrolments[enrolment.referral_id].append(enrolment)
    # Someone offered a place from the waiting list is still waiting until they accept it.
    expected = {
        Status.ENROLLED: {EnrolmentStatus.ENROLLED},
        Status.WAITLISTED: {EnrolmentStatus.WAITLISTED, EnrolmentStatus.OFFERED},
        Status.STARTED: {EnrolmentStatus.ENROLLED},
        Status.COMPLETED: {EnrolmentStatus.COMPLETED},
    }
    for referral in referrals:
        held = [
            e
            for e in enrolments[referral.id]
            if e.status
            in (EnrolmentStatus.ENROLLED, EnrolmentStatus.OFFERED, EnrolmentStatus.WAITLISTED)
        ]
        reached = {t.to_status for t in referral.transitions}
        if referral.status in MATCHED:
            current = [e for e in enrolments[referral.id] if e.status in expected[referral.status]]
            assert len(current) == 1, referral.id
            came = attended.get(current[0].id, [])
            assert bool(came) is (referral.status in (Status.STARTED, Status.COMPLETED))
        else:
            # Closed or waiting to be matched: no place held on any course.
            assert not held, referral.id
        if reached & MATCHED:
            assert enrolments[referral.id], referral.id
        if Status.DID_NOT_START in reached and enrolments[referral.id]:
            assert all(e.status is EnrolmentStatus.WITHDRAWN for e in enrolments[referral.id])
    statuses = Counter(r.status for r in referrals)
    assert set(statuses) == set(Status)


def test_completion_follows_the_75_percent_rule(today: date) -> None:
    attended = _attended()
    finished = 0
    below = 0
    for course in _courses():
        delivered = [s for s in course.sessions if s.status is SessionStatus.DELIVERED]
        if not delivered:
            continue
        needed = completion_threshold(len(delivered))
        ended = course.sessions[-1].status is SessionStatus.DELIVERED
        end = max(s.date for s in course.sessions if s.status is not SessionStatus.CANCELLED)
        for enrolment in course.enrolments:
            came = len(attended.get(enrolment.id, []))
            if enrolment.status is EnrolmentStatus.COMPLETED:
                assert ended and came >= needed
                assert enrolment.completed_at is not None
                assert enrolment.completed_at.astimezone(LONDON).date() == end
            elif ended and enrolment.status is not EnrolmentStatus.WAITLISTED:
                # Everyone still on the course at its end who came often enough completed.
                assert came < needed or enrolment.withdrawn_at is not None
                below += came < needed and came > 0
        finished += ended
    assert finished >= 20 and below >= 3


def test_registers_record_realistic_attendance_and_moods(today: date) -> None:
    sessions = db.session.scalars(
        select(CourseSession)
        .where(CourseSession.status == SessionStatus.DELIVERED)
        .options(selectinload(CourseSession.attendance), selectinload(CourseSession.course))
    ).all()
    artists = {u.id: u.email for u in db.session.scalars(select(User))}
    rows = [a for s in sessions for a in s.attendance]
    for session in sessions:
        assert session.attendance, session.id
        assert session.register_saved_at is not None
        assert session.register_saved_at.astimezone(LONDON).date() == session.date
        assert all(a.recorded_at == session.register_saved_at for a in session.attendance)
    assert {artists.get(s.register_saved_by_id or 0) for s in sessions} <= set(
        LEAD_ARTISTS.values()
    )

    statuses = Counter(a.status for a in rows)
    rate = statuses[AttendanceStatus.ATTENDED] / len(rows)
    assert 0.65 <= rate <= 0.9
    assert statuses[AttendanceStatus.APOLOGIES] > 0 and statuses[AttendanceStatus.NO_SHOW] > 0
    came = [a for a in rows if a.status is AttendanceStatus.ATTENDED]
    uplifts = [
        a.mood_after - a.mood_before
        for a in came
        if a.mood_before is not None and a.mood_after is not None
    ]
    assert len(uplifts) / len(came) > 0.8
    assert all(a.mood_before is None for a in rows if a.status is not AttendanceStatus.ATTENDED)
    assert 0.8 <= statistics.mean(uplifts) <= 2.5
    assert sum(u > 0 for u in uplifts) / len(uplifts) > 0.7


def test_each_register_lists_the_people_the_services_put_on_it(today: date) -> None:
    """The demo takes its registers by `rules.on_register`, as `register_enrolments` lists
    them: nobody on a course by a session's day is missing from its register."""
    sessions = db.session.scalars(
        select(CourseSession)
        .where(CourseSession.status == SessionStatus.DELIVERED)
        .options(selectinload(CourseSession.attendance))
    ).all()
    assert len(sessions) > 100
    for session in sessions:
        listed = {e.id for e in register_enrolments(session)}
        assert {a.enrolment_id for a in session.attendance} == listed, session.id


def test_wellbeing_pairs_for_most_completers_scored_by_the_table(today: date) -> None:
    attended = _attended()
    assessments = db.session.scalars(select(WellbeingAssessment)).all()
    for a in assessments:
        assert a.raw_score == sum(a.items) and all(1 <= i <= 5 for i in a.items)
        assert len(a.items) == a.instrument.item_count
        if a.instrument is Instrument.SWEMWBS:
            assert a.metric_score == SWEMWBS_METRIC[a.raw_score]
        else:
            assert a.metric_score == Decimal(a.raw_score)
        assert a.recorded_on < today
        came = attended.get(a.enrolment_id, [])
        if a.timepoint is Timepoint.BASELINE:
            assert came and a.recorded_on <= min(came)
        elif a.timepoint is Timepoint.END:
            assert came and a.recorded_on >= max(came)
    assert any(a.instrument is Instrument.WEMWBS for a in assessments)
    assert any(a.timepoint is Timepoint.FOLLOW_UP for a in assessments)

    swemwbs = {
        (a.enrolment_id, a.timepoint): a.metric_score
        for a in assessments
        if a.instrument is Instrument.SWEMWBS
    }
    completers = db.session.scalars(
        select(Enrolment.id).where(Enrolment.status == EnrolmentStatus.COMPLETED)
    ).all()
    changes = [
        swemwbs[(e, Timepoint.END)] - swemwbs[(e, Timepoint.BASELINE)]
        for e in completers
        if (e, Timepoint.BASELINE) in swemwbs and (e, Timepoint.END) in swemwbs
    ]
    assert len(changes) / len(completers) >= 0.65
    assert Decimal(1) <= statistics.mean(changes) <= Decimal(5)
    improved = sum(c >= 3 for c in changes)
    worse = sum(c <= -3 for c in changes)
    assert 0.3 <= improved / len(changes) <= 0.8
    assert worse >= 1 and worse / len(changes) <= 0.15
    assert len(changes) - improved - worse >= 5


def test_a_course_is_full_with_people_waiting(today: date) -> None:
    full = [
        course
        for course in _courses()
        if sum(e.status in HOLDS_PLACE for e in course.enrolments) == course.capacity
        and any(e.status is EnrolmentStatus.WAITLISTED for e in course.enrolments)
    ]
    assert len(full) >= 2
    # Earlier terms were full too, and people waiting moved on or were offered places.
    waited = db.session.scalar(select(func.count()).where(Enrolment.waitlisted_at.is_not(None)))
    assert (waited or 0) >= 20
    offers = db.session.scalar(
        select(func.count()).where(Notification.kind == "waiting_list_offer")
    )
    assert (offers or 0) >= 1


def test_a_place_given_up_before_today_is_on_offer_to_the_first_person_waiting(
    today: date,
) -> None:
    plan = plan_demo_scheme(today=today)
    (planned,) = plan.open_offers
    (offer,) = db.session.scalars(
        select(Enrolment).where(Enrolment.status == EnrolmentStatus.OFFERED)
    ).all()
    course = next(c for c in _courses() if c.id == offer.course_id)
    run = next(r for r in plan.runs if r.key == planned.run)
    person = plan.referrals[planned.referral].person
    assert (course.title, offer.referral.patient.nhs_number) == (run.title, person.nhs_number)
    assert offer.referral.status is Status.WAITLISTED
    assert course.sessions[0].date > today  # before the course starts

    # Someone turned their place down on the last working day before today (yesterday, when
    # that would leave no time after today to answer), through the link worker.
    freed_on = place_freed_at(today).date()
    assert freed_on in (last_planned_day(today), today - timedelta(days=1))
    given_up = max(
        (e for e in course.enrolments if e.status is EnrolmentStatus.WITHDRAWN),
        key=lambda e: e.withdrawn_at or datetime.min.replace(tzinfo=UTC),
    )
    assert given_up.withdrawn_at is not None
    assert given_up.withdrawn_at.astimezone(LONDON).date() == freed_on
    assert given_up.referral.status is Status.DECLINED
    # Held for them until after today; then it passes to the people behind them, in turn.
    assert offer.offer_expires_on == freed_on + timedelta(days=OFFER_REPLY_DAYS) == planned.reply_by
    assert offer.offer_expires_on > today
    held = [e for e in course.enrolments if e.status in HOLDS_PLACE]
    assert len(held) == course.capacity
    waiting = sorted(
        (e for e in course.enrolments if e.status is EnrolmentStatus.WAITLISTED),
        key=lambda e: (e.waitlisted_at, e.id),
    )
    assert waiting and all(offer.waitlisted_at <= e.waitlisted_at for e in waiting)
    assert [e.referral.patient.nhs_number for e in waiting] == [
        plan.referrals[i].person.nhs_number for i in planned.waiting
    ]
    # They and the people behind them chose email, so that with email set up they hear of it.
    for enrolment in [offer, *waiting]:
        patient = enrolment.referral.patient
        assert patient.preferred_contact is ContactMethod.EMAIL and patient.email

    # The link worker was told in-app that day, and has not read it yet.
    told = db.session.scalars(
        select(Notification).where(
            Notification.kind == "waiting_list_offer",
            Notification.text.startswith(f"R{offer.referral_id} "),
        )
    ).all()
    assert [n.created_at.astimezone(LONDON).date() for n in told] == [freed_on]
    assert told[0].user_id == offer.referral.assigned_to_id is not None


def test_the_lead_artist_has_a_session_to_take_this_week(today: date) -> None:
    artist = db.session.scalar(select(User).where(User.email == "artist@demo.test"))
    week = db.session.scalars(sessions_for_user(artist, today, today + timedelta(days=6))).all()
    coming = [s for s in week if s.status is SessionStatus.PLANNED]
    assert coming and all(artist in s.course.lead_artists and s.course.enrolments for s in coming)
    recent = db.session.scalars(sessions_for_user(artist, today - timedelta(days=7), today)).all()
    assert any(s.status is SessionStatus.DELIVERED for s in recent)
    emails = set(db.session.scalars(select(User.email).where(User.email.like("artist%"))))
    assert emails == set(LEAD_ARTISTS.values())


def test_transitions_and_messages_are_dated_when_they_happened(today: date) -> None:
    referrals = db.session.scalars(
        select(Referral).options(selectinload(Referral.transitions))
    ).all()
    for referral in referrals:
        chain = referral.transitions
        for before, after in pairwise(chain):
            assert after.from_status is before.to_status
            assert (after.from_status, after.to_status) in TRANSITIONS
            assert before.at <= after.at
        assert chain[-1].to_status is referral.status
        assert referral.status_changed_at == chain[-1].at
        assert chain[-1].at.astimezone(LONDON).date() < today
        for step in chain:
            if step.to_status is Status.STARTED:
                # Started on the day of the first session they came to.
                assert step.effective_on == step.at.astimezone(LONDON).date()

    latest = db.session.scalar(select(func.max(Notification.created_at)))
    assert latest is not None and latest.astimezone(LONDON).date() < today
    # Practice users have read their older messages; a few recent ones are new.
    for email in ("gp@demo.test", "gp2@demo.test"):
        user = db.session.scalar(select(User).where(User.email == email))
        unread = unread_count(user)
        assert 1 <= unread <= 15, (email, unread)
        recent = today - timedelta(days=UNREAD_DAYS)
        for notification, is_read in db.session.execute(inbox_query(user)).all():
            if not is_read:
                assert notification.created_at.astimezone(LONDON).date() >= recent


def test_the_plan_matches_what_the_services_made(today: date) -> None:
    plan = plan_demo_scheme(today=today)
    assert db.session.scalar(select(func.count()).select_from(Course)) == len(plan.runs)
    assert db.session.scalar(select(func.count()).select_from(Referral)) == len(plan.referrals)
    assert Counter(r.status for r in db.session.scalars(select(Referral))) == Counter(
        r.status for r in plan.referrals
    )


# The statuses only the course services move a referral into.
COURSE_STATUSES = {Status.WAITLISTED, Status.ENROLLED, Status.STARTED, Status.COMPLETED}


Step = tuple[Status | None, Status, date]  # from, to, and the day in London


def _course_steps(chain: list[Step]) -> list[Step]:
    """The moves into, out of and along a course: enrolment or the waiting list, a freed place
    taken, the start, completion, and where giving up a place left the referral."""
    return [
        (before, after, day)
        for before, after, day in chain
        if before is not None and (before in COURSE_STATUSES or after in COURSE_STATUSES)
    ]


def _planned_chain(referral: PlannedReferral) -> list[Step]:
    """Every status change the plan made, as `PlannedReferral.status` reads its steps."""
    chain: list[Step] = []
    status = Status.RECEIVED
    for step in referral.steps:
        if isinstance(step, PlannedMove):
            chain.append((status, step.target, step.at.astimezone(LONDON).date()))
            status = step.target
        elif isinstance(step, PlannedConversation):
            status = Status.ASSESSED
        elif isinstance(step, PlannedContact) and status is Status.RECEIVED:
            status = Status.CONTACTING
    return chain


def test_the_plan_and_the_services_move_every_referral_through_the_same_course_steps(
    today: date,
) -> None:
    """The demo's year is played by `referrals.courses.rules`; the services apply the same rules
    to the database. Who gets a place or waits, who is offered a freed place, who starts on which
    day, who completes and where a withdrawal leaves a referral: any rule the two applied
    differently changes some referral's steps here."""
    plan = plan_demo_scheme(today=today)
    # A person referred again has a referral for each episode.
    made_for = {
        (r.patient.nhs_number, r.received_on): r
        for r in db.session.scalars(
            select(Referral).options(
                selectinload(Referral.transitions), selectinload(Referral.patient)
            )
        )
    }
    compared = 0
    for planned in plan.referrals:
        referral = made_for[(planned.person.nhs_number, planned.received_on)]
        made = _course_steps(
            [
                (t.from_status, t.to_status, t.at.astimezone(LONDON).date())
                for t in sorted(referral.transitions, key=lambda t: (t.at, t.id))
            ]
        )
        expected = _course_steps(_planned_chain(planned))
        assert made == expected, referral.id
        compared += len(made)
    assert len(made_for) == len(plan.referrals)
    assert compared >= 500


def test_the_demo_keeps_the_invariants_the_course_services_keep(today: date) -> None:
    """No course holds more places than it has; nobody waits while a place is free; a place on
    offer went to the person waiting longest; everyone on a finished course completed it exactly
    when `rules.completes` says; a referral started on the day of its first attendance."""
    attended = _attended()
    started_on: dict[int, list[date]] = defaultdict(list)
    for referral_id, day in db.session.execute(
        select(ReferralTransition.referral_id, ReferralTransition.effective_on).where(
            ReferralTransition.to_status == Status.STARTED
        )
    ):
        started_on[referral_id].append(day)
    for course in _courses():
        held = sum(rules.holds_place(e.status) for e in course.enrolments)
        assert held <= course.capacity, course.title
        waiting = rules.in_waiting_order(
            [e for e in course.enrolments if e.status is EnrolmentStatus.WAITLISTED],
            lambda e: rules.waiting_order(e.waitlisted_at, e.id),
        )
        if waiting:
            assert rules.is_full(course.capacity, held), course.title
        for offered in (e for e in course.enrolments if e.status is EnrolmentStatus.OFFERED):
            assert all(
                rules.waiting_order(offered.waitlisted_at, offered.id)
                < rules.waiting_order(e.waitlisted_at, e.id)
                for e in waiting
            )
            assert offered.offer_expires_on is not None
        delivered, counts = attendance_counts(course.id)
        end = course_end(course.id)
        finished = any(
            s.date == end and s.status is SessionStatus.DELIVERED for s in course.sessions
        )
        for enrolment in course.enrolments:
            came = counts.get(enrolment.id, 0)
            if enrolment.status is EnrolmentStatus.COMPLETED:
                assert finished and rules.completes(came, delivered), enrolment.id
            elif finished and enrolment.status is EnrolmentStatus.ENROLLED:
                assert not rules.completes(came, delivered), enrolment.id
            if came:
                # Started on the day of the first session they came to, and only then.
                assert started_on[enrolment.referral_id] == [min(attended[enrolment.id])]
