"""Course services: creating courses and their sessions, enrolment and waiting lists,
registers, completion, and wellbeing questionnaires.

Each takes explicit arguments, writes its audit entry and leaves the commit to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import selectinload

from referrals.audit import record
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses.kpi_targets import check_targets
from referrals.courses.models import (
    ACTIVE_ENROLMENT,
    Attendance,
    AttendanceStatus,
    Contract,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.courses.schedule import Schedule, expand
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.lifecycle import Actor, Status, check_transition
from referrals.intake.models import Referral
from referrals.intake.services import transition, transition_many
from referrals.intake.validation import age_on
from referrals.notifications.services import notify
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import Instrument, Timepoint, score
from referrals.vocab import ArtForm, Pathway

REGISTER_EDIT_DAYS = 7
COMPLETION_SHARE = Decimal("0.75")


class CourseRuleBroken(ValueError):
    """A request the course rules refuse. `field` names the input it is about, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# Contracts and venues ------------------------------------------------------------------


@dataclass(frozen=True)
class ContractFields:
    name: str
    commissioner: Organisation
    start_date: date
    end_date: date
    targets: dict[str, Any] = field(default_factory=dict)


def save_contract(actor: Any, fields: ContractFields, contract: Contract | None = None) -> Contract:
    if fields.commissioner.kind != OrganisationKind.COMMISSIONER:
        raise CourseRuleBroken("Choose a commissioner organisation", "commissioner_id")
    if fields.end_date < fields.start_date:
        raise CourseRuleBroken("The end date must be on or after the start date", "end_date")
    contract = contract or Contract()
    contract.name = fields.name.strip()
    contract.commissioner = fields.commissioner
    contract.start_date = fields.start_date
    contract.end_date = fields.end_date
    # The targets rule has the last word, whoever sends the targets (raises InvalidTargets).
    contract.targets = check_targets(fields.targets)
    db.session.add(contract)
    db.session.flush()
    record(actor, "contract.saved", contract)
    return contract


@dataclass(frozen=True)
class VenueFields:
    name: str
    address: str
    postcode: str
    accessibility: str = ""


def save_venue(actor: Any, fields: VenueFields, venue: Venue | None = None) -> Venue:
    """Create a venue, or update `venue` in place."""
    created = venue is None
    venue = venue or Venue()
    venue.name = fields.name.strip()
    venue.address = fields.address.strip()
    venue.postcode = fields.postcode
    venue.accessibility = fields.accessibility.strip()
    db.session.add(venue)
    db.session.flush()
    record(actor, "venue.created" if created else "venue.updated", venue)
    return venue


def create_venue(actor: Any, fields: VenueFields) -> Venue:
    return save_venue(actor, fields)


# Courses and sessions ------------------------------------------------------------------


@dataclass(frozen=True)
class CourseFields:
    title: str
    art_form: ArtForm
    provider: Organisation
    contract: Contract
    venue: Venue
    capacity: int
    schedule: Schedule
    description: str = ""
    pathways: Sequence[Pathway] = ()
    min_age: int | None = None
    max_age: int | None = None
    cost_per_session_pence: int = 0
    lead_artists: Sequence[User] = ()


def _check_course(fields: CourseFields) -> None:
    if fields.provider.kind != OrganisationKind.PROVIDER:
        raise CourseRuleBroken("Choose an arts provider", "provider_id")
    if fields.capacity < 1:
        raise CourseRuleBroken("Capacity must be 1 or more", "capacity")
    if (
        fields.min_age is not None
        and fields.max_age is not None
        and fields.min_age > fields.max_age
    ):
        raise CourseRuleBroken("The youngest age must not be above the oldest", "min_age")
    for artist in fields.lead_artists:
        if artist.role != Role.ARTIST or artist.organisation_id != fields.provider.id:
            raise CourseRuleBroken(
                f"{artist.name} is not an artist at {fields.provider.name}", "lead_artists"
            )


def create_course(actor: Any, fields: CourseFields) -> Course:
    """Create a course and expand its schedule into dated sessions."""
    _check_course(fields)
    planned = expand(fields.schedule)
    course = Course(
        title=fields.title.strip(),
        description=fields.description.strip(),
        art_form=fields.art_form,
        provider=fields.provider,
        contract=fields.contract,
        venue=fields.venue,
        pathways=[p.value for p in fields.pathways],
        min_age=fields.min_age,
        max_age=fields.max_age,
        capacity=fields.capacity,
        cost_per_session_pence=fields.cost_per_session_pence,
        start_date=fields.schedule.start_date,
        start_time=fields.schedule.start_time,
        duration_minutes=fields.schedule.duration_minutes,
        frequency=fields.schedule.frequency,
        session_count=fields.schedule.sessions,
        taster_count=fields.schedule.taster_sessions,
        lead_artists=list(fields.lead_artists),
    )
    db.session.add(course)
    db.session.flush()
    db.session.add_all(
        CourseSession(
            course_id=course.id,
            sequence=p.sequence,
            date=p.date,
            start_time=p.start_time,
            duration_minutes=p.duration_minutes,
            is_taster=p.is_taster,
        )
        for p in planned
    )
    db.session.flush()
    record(actor, "course.created", course, sessions=len(planned))
    return course


def update_course(actor: Any, course: Course, fields: CourseFields) -> Course:
    """Change a course's details. Its sessions keep their dates; move or cancel them singly."""
    _check_course(fields)
    enrolled = enrolled_count(course)
    if fields.capacity < enrolled:
        raise CourseRuleBroken(
            f"{enrolled} people are enrolled: capacity cannot be below that", "capacity"
        )
    course.title = fields.title.strip()
    course.description = fields.description.strip()
    course.art_form = fields.art_form
    course.provider = fields.provider
    course.contract = fields.contract
    course.venue = fields.venue
    course.pathways = [p.value for p in fields.pathways]
    course.min_age, course.max_age = fields.min_age, fields.max_age
    course.cost_per_session_pence = fields.cost_per_session_pence
    course.lead_artists = list(fields.lead_artists)
    grew = fields.capacity > course.capacity
    course.capacity = fields.capacity
    if grew:
        _fill_from_waiting_list(actor, course)
    record(actor, "course.updated", course)
    return course


def cancel_session(actor: Any, session: CourseSession, reason: str) -> None:
    if session.status is SessionStatus.DELIVERED:
        raise CourseRuleBroken("This session has a register; it cannot be cancelled", "status")
    if not reason.strip():
        raise CourseRuleBroken("Give a reason for cancelling", "reason")
    session.status = SessionStatus.CANCELLED
    session.cancelled_reason = reason.strip()
    record(actor, "session.cancelled", session, course_id=session.course_id)


def move_session(
    actor: Any, session: CourseSession, new_date: date, new_time: time | None, *, today: date
) -> None:
    if session.status is not SessionStatus.PLANNED:
        raise CourseRuleBroken("Only a planned session can be moved", "date")
    if new_date < today:
        raise CourseRuleBroken("Move the session to today or a later date", "date")
    session.moved_from = session.moved_from or session.date
    session.date = new_date
    if new_time is not None:
        session.start_time = new_time
    record(actor, "session.moved", session, course_id=session.course_id)


def course_end(course_id: int) -> date | None:
    """The date of the course's last session that is not cancelled."""
    return db.session.scalar(
        select(func.max(CourseSession.date)).where(
            CourseSession.course_id == course_id, CourseSession.status != SessionStatus.CANCELLED
        )
    )


# Enrolment and the waiting list --------------------------------------------------------


def enrolled_count(course: Course) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(
                Enrolment.course_id == course.id, Enrolment.status == EnrolmentStatus.ENROLLED
            )
        )
        or 0
    )


def places_left(course: Course) -> int:
    return max(0, course.capacity - enrolled_count(course))


def waitlist_position(enrolment: Enrolment) -> int | None:
    if enrolment.status is not EnrolmentStatus.WAITLISTED or enrolment.waitlisted_at is None:
        return None
    ahead = (
        db.session.scalar(
            select(func.count()).where(
                Enrolment.course_id == enrolment.course_id,
                Enrolment.status == EnrolmentStatus.WAITLISTED,
                (Enrolment.waitlisted_at < enrolment.waitlisted_at)
                | (
                    (Enrolment.waitlisted_at == enrolment.waitlisted_at)
                    & (Enrolment.id < enrolment.id)
                ),
            )
        )
        or 0
    )
    return ahead + 1


def _lock_course(course: Course, referral: Referral | None = None) -> None:
    """Lock the course, then the referral: always in that order, so rivals never deadlock.

    On PostgreSQL two link workers enrolling at once queue here, so the last place goes to one
    of them; SQLite's writing transactions already hold the database lock.
    """
    db.session.execute(select(Course.id).where(Course.id == course.id).with_for_update())
    if referral is not None:
        db.session.execute(select(Referral.id).where(Referral.id == referral.id).with_for_update())
        db.session.refresh(referral)  # its status as the lock holder left it


def enrol(
    actor: User, referral: Referral, course: Course, *, today: date, at: datetime | None = None
) -> Enrolment:
    """Place an assessed referral on a course, or on its waiting list when it is full."""
    _lock_course(course, referral)
    at = at or utcnow()
    if referral.status is not Status.ASSESSED:
        raise CourseRuleBroken(
            "Only an assessed referral can be enrolled; this one is "
            f"{referral.status.label.lower()}",
            "referral_id",
        )
    active = db.session.scalar(
        select(Enrolment).where(
            Enrolment.referral_id == referral.id, Enrolment.status.in_(ACTIVE_ENROLMENT)
        )
    )
    if active is not None:
        raise CourseRuleBroken(
            "This person is already enrolled or waiting on a course", "referral_id"
        )
    dob = referral.patient.date_of_birth
    start = course.start_date if course.start_date > today else today
    if dob is not None:
        age = age_on(dob, start)
        if (course.min_age is not None and age < course.min_age) or (
            course.max_age is not None and age > course.max_age
        ):
            raise CourseRuleBroken("This person is outside the course's age range", "referral_id")
    end = course_end(course.id)
    if end is not None and end < today:
        raise CourseRuleBroken("This course has finished", "course_id")

    enrolment = db.session.scalar(
        select(Enrolment).where(
            Enrolment.course_id == course.id, Enrolment.referral_id == referral.id
        )
    ) or Enrolment(course_id=course.id, referral_id=referral.id)
    enrolment.created_by_id = actor.id
    enrolment.withdrawn_at = None
    enrolment.withdrawn_reason = ""
    if enrolled_count(course) < course.capacity:
        enrolment.status = EnrolmentStatus.ENROLLED
        enrolment.enrolled_at = at
        target = Status.ENROLLED
    else:
        enrolment.status = EnrolmentStatus.WAITLISTED
        enrolment.waitlisted_at = at
        target = Status.WAITLISTED
    db.session.add(enrolment)
    db.session.flush()
    transition(actor, referral, target, by=Actor.SYSTEM, note=course.title, at=at, today=today)
    record(actor, "enrolment.created", enrolment, status=enrolment.status.value)
    return enrolment


def withdraw(
    actor: User,
    enrolment: Enrolment,
    reason: str,
    *,
    today: date,
    close_as: Status | None = None,
    note: str = "",
) -> Enrolment | None:
    """Take someone off a course; a freed place goes to the first person waiting.

    The referral goes back to `assessed` to be matched again (or, once started, is withdrawn);
    with `close_as` it is closed with that status instead. Returns the enrolment that was
    offered the place, if any.
    """
    if enrolment.status not in ACTIVE_ENROLMENT:
        raise CourseRuleBroken("This person is not on the course or its waiting list", "status")
    if not reason.strip():
        raise CourseRuleBroken("Give a reason", "reason")
    _lock_course(enrolment.course, enrolment.referral)
    db.session.refresh(enrolment)
    if enrolment.status not in ACTIVE_ENROLMENT:
        raise CourseRuleBroken("This person is not on the course or its waiting list", "status")
    held_place = enrolment.status is EnrolmentStatus.ENROLLED
    enrolment.status = EnrolmentStatus.WITHDRAWN
    enrolment.withdrawn_at = utcnow()
    enrolment.withdrawn_reason = reason.strip()
    referral = enrolment.referral
    if close_as is not None:
        transition(actor, referral, close_as, reason=reason, note=note, today=today)
    elif referral.status in (Status.ENROLLED, Status.WAITLISTED):
        transition(
            actor,
            referral,
            Status.ASSESSED,
            by=Actor.SYSTEM,
            note=f"Taken off {enrolment.course.title}: {reason.strip()}",
            today=today,
        )
    elif referral.status is Status.STARTED:
        transition(actor, referral, Status.WITHDRAWN, reason=reason, today=today)
    record(actor, "enrolment.withdrawn", enrolment)
    db.session.flush()
    if held_place:
        offered = _fill_from_waiting_list(actor, enrolment.course)
        return offered[0] if offered else None
    return None


def lock_courses_of(referral_id: int) -> None:
    """Lock the courses a referral holds a place on, before the referral itself is locked.

    Every change takes course locks before referral locks, so two changes never wait on each
    other in a circle.
    """
    held = select(Enrolment.course_id).where(
        Enrolment.referral_id == referral_id, Enrolment.status.in_(ACTIVE_ENROLMENT)
    )
    db.session.execute(select(Course.id).where(Course.id.in_(held)).with_for_update())


def close_referral(
    actor: User,
    referral: Referral,
    target: Status,
    *,
    reason: str,
    note: str = "",
    on: date | None = None,
    today: date,
) -> Enrolment | None:
    """Move a referral by hand; closing it also gives up its course place or waiting-list spot.

    Returns the enrolment offered the freed place, if any.
    """
    active = db.session.scalar(
        select(Enrolment).where(
            Enrolment.referral_id == referral.id, Enrolment.status.in_(ACTIVE_ENROLMENT)
        )
    )
    if active is None or not target.is_closing:
        transition(actor, referral, target, reason=reason, note=note, on=on, today=today)
        return None
    check_transition(referral.status, target, actor=Actor.PERSON, reason=reason)
    return withdraw(actor, active, reason, today=today, close_as=target, note=note)


def _fill_from_waiting_list(actor: Any, course: Course) -> list[Enrolment]:
    """Offer free places to the people waiting longest, and tell their link workers."""
    offered: list[Enrolment] = []
    free = course.capacity - enrolled_count(course)
    if free <= 0:
        return offered
    waiting = db.session.scalars(
        select(Enrolment)
        .where(Enrolment.course_id == course.id, Enrolment.status == EnrolmentStatus.WAITLISTED)
        .order_by(Enrolment.waitlisted_at, Enrolment.id)
        .limit(free)
    ).all()
    for enrolment in waiting:
        enrolment.status = EnrolmentStatus.ENROLLED
        enrolment.enrolled_at = utcnow()
        referral = enrolment.referral
        transition(
            actor,
            referral,
            Status.ENROLLED,
            by=Actor.SYSTEM,
            note=f"Offered a place on {course.title} from the waiting list",
        )
        text = (
            f"R{referral.id} has been offered a place on {course.title} from the "
            "waiting list. Let them know."
        )
        if referral.assigned_to is not None:
            notify(
                user=referral.assigned_to,
                text=text,
                link=f"/referrals/{referral.id}",
                kind="waiting_list_offer",
            )
        elif getattr(actor, "organisation", None) is not None and actor.role == Role.LINK_WORKER:
            notify(
                organisation=actor.organisation,
                text=text,
                link=f"/referrals/{referral.id}",
                kind="waiting_list_offer",
            )
        record(actor, "enrolment.offered_place", enrolment)
        offered.append(enrolment)
    return offered


# Registers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterEntry:
    enrolment_id: int
    status: AttendanceStatus
    mood_before: int | None = None
    mood_after: int | None = None
    note: str = ""


class RegisterRefused(CourseRuleBroken):
    """A register that cannot be saved; `errors` maps entry fields to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


def register_enrolments(session: CourseSession) -> list[Enrolment]:
    """The people a register lists: enrolled or completed, plus anyone already marked."""
    marked = select(Attendance.enrolment_id).where(Attendance.session_id == session.id)
    return list(
        db.session.scalars(
            select(Enrolment)
            .where(
                Enrolment.course_id == session.course_id,
                Enrolment.status.in_((EnrolmentStatus.ENROLLED, EnrolmentStatus.COMPLETED))
                | Enrolment.id.in_(marked),
            )
            .options(selectinload(Enrolment.referral).selectinload(Referral.patient))
            .order_by(Enrolment.id)
        )
    )


def can_edit_register(user: Any, session: CourseSession, today: date) -> bool:
    if session.status is SessionStatus.CANCELLED or session.date > today:
        return False
    if user.role == Role.ADMIN:
        return True
    return user.role == Role.ARTIST and (today - session.date).days <= REGISTER_EDIT_DAYS


@dataclass(frozen=True)
class SavedRegister:
    attendance: list[Attendance]
    # Who this save completed the course for; None unless it was the course's last session.
    completed: list[Enrolment] | None


def save_register(
    actor: User, session: CourseSession, entries: Sequence[RegisterEntry], *, today: date
) -> SavedRegister:
    """Record who came (and moods), mark the session delivered, start and complete people.

    All or nothing: any bad entry refuses the whole register.
    """
    if session.status is SessionStatus.CANCELLED:
        raise RegisterRefused("This session was cancelled; it has no register")
    if session.date > today:
        raise RegisterRefused("The register can be taken on the day of the session or after")
    if not can_edit_register(actor, session, today):
        raise RegisterRefused(
            f"Registers can be changed for {REGISTER_EDIT_DAYS} days after the session. "
            "Ask an admin to correct it"
        )
    allowed = {e.id: e for e in register_enrolments(session)}
    errors: dict[str, list[str]] = {}
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        if entry.enrolment_id not in allowed:
            errors[f"entries.{index}.enrolment_id"] = ["This person is not enrolled on the course"]
        elif entry.enrolment_id in seen:
            errors[f"entries.{index}.enrolment_id"] = ["This person is listed twice"]
        seen.add(entry.enrolment_id)
        for name in ("mood_before", "mood_after"):
            value = getattr(entry, name)
            if value is not None and not (isinstance(value, int) and 0 <= value <= 10):
                errors[f"entries.{index}.{name}"] = ["Mood must be a whole number from 0 to 10"]
        if len(entry.note) > 1000:
            errors[f"entries.{index}.note"] = ["Note must be 1000 characters or fewer"]
    if errors:
        raise RegisterRefused("The register has problems; nothing was saved", errors)

    existing = {
        a.enrolment_id: a
        for a in db.session.scalars(select(Attendance).where(Attendance.session_id == session.id))
    }
    now = utcnow()
    new_rows = []
    for entry in entries:
        values = {
            "status": entry.status,
            "mood_before": entry.mood_before,
            "mood_after": entry.mood_after,
            "note": entry.note.strip(),
            "recorded_at": now,
            "recorded_by_id": actor.id,
        }
        row = existing.get(entry.enrolment_id)
        if row is None:
            new_rows.append(
                {"session_id": session.id, "enrolment_id": entry.enrolment_id, **values}
            )
        else:
            for name, value in values.items():
                setattr(row, name, value)
    if new_rows:
        # One batched INSERT, however many people came.
        db.session.execute(insert(Attendance), new_rows)
    late_edit = (
        session.status is SessionStatus.DELIVERED
        and (today - session.date).days > REGISTER_EDIT_DAYS
    )
    session.status = SessionStatus.DELIVERED
    session.register_saved_at = now
    session.register_saved_by_id = actor.id
    record(
        actor,
        "register.saved",
        session,
        course_id=session.course_id,
        entries=len(entries),
        late_edit_by_admin=late_edit,
    )

    starting = [
        allowed[entry.enrolment_id].referral
        for entry in entries
        if entry.status is AttendanceStatus.ATTENDED
        and allowed[entry.enrolment_id].referral.status is Status.ENROLLED
    ]
    transition_many(
        actor, starting, Status.STARTED, by=Actor.SYSTEM, on=session.date, note="First attendance"
    )
    db.session.flush()
    completed = None
    if course_end(session.course_id) == session.date:
        completed = complete_course(actor, session.course, today=today)
    attendance = db.session.scalars(
        select(Attendance).where(Attendance.session_id == session.id).order_by(Attendance.id)
    )
    return SavedRegister(list(attendance), completed)


def attendance_counts(course_id: int) -> tuple[int, dict[int, int]]:
    """Delivered sessions of a course, and attended sessions per enrolment."""
    delivered = (
        db.session.scalar(
            select(func.count()).where(
                CourseSession.course_id == course_id,
                CourseSession.status == SessionStatus.DELIVERED,
            )
        )
        or 0
    )
    attended = dict(
        db.session.execute(
            select(Attendance.enrolment_id, func.count())
            .join(CourseSession, CourseSession.id == Attendance.session_id)
            .where(
                CourseSession.course_id == course_id,
                CourseSession.status == SessionStatus.DELIVERED,
                Attendance.status == AttendanceStatus.ATTENDED,
            )
            .group_by(Attendance.enrolment_id)
        ).all()
    )
    return delivered, attended


def completion_threshold(delivered_sessions: int) -> int:
    """Attended sessions needed to complete: 75% of delivered sessions, rounded up (KPI B7)."""
    return math.ceil(Decimal(delivered_sessions) * COMPLETION_SHARE)


def complete_course(actor: Any, course: Course, *, today: date) -> list[Enrolment]:
    """At the course end, mark who completed it and send the message back for each."""
    delivered, attended = attendance_counts(course.id)
    needed = completion_threshold(delivered)
    completed = []
    for enrolment in db.session.scalars(
        select(Enrolment)
        .where(Enrolment.course_id == course.id, Enrolment.status == EnrolmentStatus.ENROLLED)
        .options(selectinload(Enrolment.referral))
    ):
        if delivered and attended.get(enrolment.id, 0) >= needed:
            enrolment.status = EnrolmentStatus.COMPLETED
            enrolment.completed_at = utcnow()
            completed.append(enrolment)
    transition_many(
        actor,
        [e.referral for e in completed if e.referral.status is Status.STARTED],
        Status.COMPLETED,
        by=Actor.SYSTEM,
        note=f"Completed {course.title}",
        today=today,
    )
    if completed:
        record(actor, "course.completions", course, completed=len(completed))
    return completed


# Wellbeing -----------------------------------------------------------------------------


def record_wellbeing(
    actor: User,
    enrolment: Enrolment,
    instrument: Instrument,
    timepoint: Timepoint,
    items: Sequence[int],
    *,
    recorded_on: date,
    today: date,
) -> WellbeingAssessment:
    """Score and store a questionnaire. Raises InvalidScores for bad answers."""
    if recorded_on > today:
        raise CourseRuleBroken("The date must be today or in the past", "recorded_on")
    result = score(instrument, items)
    assessment = WellbeingAssessment(
        enrolment_id=enrolment.id,
        instrument=instrument,
        timepoint=timepoint,
        items=list(items),
        raw_score=result.raw,
        metric_score=result.metric,
        recorded_on=recorded_on,
        recorded_by_id=actor.id,
    )
    db.session.add(assessment)
    db.session.flush()
    record(
        actor,
        "wellbeing.recorded",
        assessment,
        enrolment_id=enrolment.id,
        instrument=instrument.value,
        timepoint=timepoint.value,
    )
    return assessment


def session_end(session: CourseSession) -> datetime:
    return datetime.combine(session.date, session.start_time) + timedelta(
        minutes=session.duration_minutes
    )
