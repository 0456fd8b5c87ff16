"""Course services: creating courses and their sessions, enrolment and waiting lists,
registers, completion, and wellbeing questionnaires.

Each takes explicit arguments, writes its audit entry and leaves the commit to the caller.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, exists, func, insert, select
from sqlalchemy.orm import selectinload

from referrals import clock, dates
from referrals.audit import record, record_view, record_views
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses import rules
from referrals.courses.kpi_targets import check_targets
from referrals.courses.models import (
    ACTIVE_ENROLMENT,
    HOLDS_PLACE,
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
from referrals.courses.progress import SessionsLeft
from referrals.courses.register_rules import (
    REGISTER_EDIT_DAYS,
    RegisterEntry,
    entry_problems,
)
from referrals.courses.schedule import Schedule, expand
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.lifecycle import Actor, Status, check_transition
from referrals.intake.models import Referral
from referrals.intake.services import transition, transition_many
from referrals.intake.validation import age_on
from referrals.notifications import messages
from referrals.notifications.services import notify
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import Instrument, Timepoint, score
from referrals.outcomes.timepoints import CourseDays, timepoint_problem
from referrals.reports.services import mark_returns_changed
from referrals.vocab import ArtForm, Pathway

CONTRACT_VALUE_MAX_PENCE = 100_000_000_00  # £100 million for a contract's whole term
# What describes the catalogue, checked by the admin forms and the API alike.
TITLE_MAX = 200  # contract, venue and course names (the columns' length)
ADDRESS_MAX = 1000
AGE_MAX = 120
CAPACITY_MAX = 1000
COST_MAX_PENCE = 1_000_000  # £10,000 a session


class CourseRuleBroken(ValueError):
    """A request the course rules refuse. `field` names the input it is about, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@contextmanager
def _dates_checked() -> Iterator[None]:
    """A date outside the service's bounds (referrals.dates) is a rule broken at its field."""
    try:
        yield
    except dates.DateRefused as refused:
        raise CourseRuleBroken(str(refused), refused.field) from refused


# Contracts and venues ------------------------------------------------------------------


@dataclass(frozen=True)
class ContractFields:
    name: str
    commissioner: Organisation
    start_date: date
    end_date: date
    targets: dict[str, Any] = field(default_factory=dict)
    value_pence: int | None = None  # for the whole term; None when not recorded


def save_contract(
    actor: Any, fields: ContractFields, contract: Contract | None = None, *, today: date
) -> Contract:
    """Create a contract, or update `contract` in place; its term keeps every session inside."""
    if fields.commissioner.kind != OrganisationKind.COMMISSIONER:
        raise CourseRuleBroken("Choose a commissioner organisation", "commissioner_id")
    with _dates_checked():
        dates.check_contract(fields.start_date, fields.end_date, today)
        if contract is not None and contract.id is not None:
            dates.check_contract_holds(
                fields.start_date, fields.end_date, *_session_span(Course.contract_id, contract.id)
            )
    if fields.value_pence is not None and not 0 <= fields.value_pence <= CONTRACT_VALUE_MAX_PENCE:
        raise CourseRuleBroken(
            f"The contract's value must be from £0 to £{CONTRACT_VALUE_MAX_PENCE // 100:,}",
            "value_pence",
        )
    contract = contract or Contract()
    contract.name = fields.name.strip()
    contract.commissioner = fields.commissioner
    contract.start_date = fields.start_date
    contract.end_date = fields.end_date
    # The targets rule has the last word, whoever sends the targets (raises InvalidTargets).
    contract.targets = check_targets(fields.targets)
    contract.value_pence = fields.value_pence
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
    cost_per_session_pence: int = 0  # to the contract, never a charge to the participant
    participant_fee_pence: int | None = None  # per session; None: free
    lead_artists: Sequence[User] = ()


def _check_course(fields: CourseFields) -> None:
    if fields.provider.kind != OrganisationKind.PROVIDER:
        raise CourseRuleBroken("Choose an arts provider", "provider_id")
    if fields.capacity < 1:
        raise CourseRuleBroken("Capacity must be 1 or more", "capacity")
    if fields.participant_fee_pence is not None and fields.participant_fee_pence < 0:
        raise CourseRuleBroken("The participant's fee must be £0 or more", "participant_fee")
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


def _session_span(column: Any, value: int) -> tuple[date | None, date | None]:
    """The first and last dates of the sessions still to run or run (not cancelled) of the
    courses where `column == value`."""
    first, last = db.session.execute(
        select(func.min(CourseSession.date), func.max(CourseSession.date))
        .join(Course, CourseSession.course_id == Course.id)
        .where(column == value, CourseSession.status != SessionStatus.CANCELLED)
    ).one()
    return first, last


def _check_inside_contract(contract: Contract, first: date, last: date, field: str) -> None:
    with _dates_checked():
        dates.check_within_contract(
            first, last, contract.start_date, contract.end_date, field=field
        )


def create_course(actor: Any, fields: CourseFields) -> Course:
    """Create a course and expand its schedule into dated sessions, all inside its contract."""
    _check_course(fields)
    planned = expand(fields.schedule)
    _check_inside_contract(
        fields.contract, planned[0].date, planned[-1].date, "schedule.start_date"
    )
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
        participant_fee_pence=fields.participant_fee_pence,
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
    taken = places_taken(course)
    if fields.capacity < taken:
        raise CourseRuleBroken(
            f"{taken} places are taken: capacity cannot be below that", "capacity"
        )
    if fields.contract.id != course.contract_id:
        first, last = _session_span(Course.id, course.id)
        if first is not None and last is not None:
            _check_inside_contract(fields.contract, first, last, "contract_id")
    course.title = fields.title.strip()
    course.description = fields.description.strip()
    course.art_form = fields.art_form
    course.provider = fields.provider
    course.contract = fields.contract
    course.venue = fields.venue
    course.pathways = [p.value for p in fields.pathways]
    course.min_age, course.max_age = fields.min_age, fields.max_age
    course.cost_per_session_pence = fields.cost_per_session_pence
    course.participant_fee_pence = fields.participant_fee_pence
    course.lead_artists = list(fields.lead_artists)
    grew = fields.capacity > course.capacity
    course.capacity = fields.capacity
    if grew:
        _fill_from_waiting_list(actor, course)
    record(actor, "course.updated", course)
    return course


def cancel_session(actor: Any, session: CourseSession, reason: str) -> None:
    """Cancel a session that has no register: it gets no reminder and no register nudge,
    and never counts as delivered. Everyone on the course and its lead artists are told."""
    if session.status is SessionStatus.DELIVERED:
        raise CourseRuleBroken("This session has a register; it cannot be cancelled", "status")
    if session.status is SessionStatus.CANCELLED:
        raise CourseRuleBroken("This session is already cancelled", "reason")
    if not reason.strip():
        raise CourseRuleBroken("Give a reason for cancelling", "reason")
    session.status = SessionStatus.CANCELLED
    session.cancelled_reason = reason.strip()
    record(actor, "session.cancelled", session, course_id=session.course_id)
    messages.session_cancelled(session)
    change = f"on {session.date:%-d %B} is cancelled: {session.cancelled_reason}"
    _tell_lead_artists(actor, session, change)


def move_session(
    actor: Any,
    session: CourseSession,
    new_date: date,
    new_time: time | None,
    *,
    today: date,
    new_venue: Venue | None = None,
) -> None:
    """Move a planned session to another day, start time or venue (None: unchanged). Everyone
    on the course and its lead artists are told; reminders follow the session."""
    if session.status is not SessionStatus.PLANNED:
        raise CourseRuleBroken("Only a planned session can be moved", "date")
    if new_date < today:
        raise CourseRuleBroken("Move the session to today or a later date", "date")
    start = new_time or session.start_time
    venue = new_venue or session.venue
    if (new_date, start, venue.id) == (session.date, session.start_time, session.venue.id):
        raise CourseRuleBroken("Give a new date, start time or venue", "date")
    contract = session.course.contract
    _check_inside_contract(contract, new_date, new_date, "date")
    was = session.date
    if new_date != session.date:
        session.moved_from = session.moved_from or session.date
    session.date = new_date
    session.start_time = start
    session.moved_venue = None if venue.id == session.course.venue_id else venue
    record(actor, "session.moved", session, course_id=session.course_id, was=was.isoformat())
    messages.session_moved(session, was)
    change = f"planned for {was:%-d %B} has moved to {when_and_where(session)}"
    _tell_lead_artists(actor, session, change)


def when_and_where(session: CourseSession) -> str:
    """When and where a session meets, for people: 17 March 2026, 10:00, at St Mark's Hall."""
    return f"{session.date:%-d %B %Y}, {session.start_time:%H:%M}, at {session.venue.name}"


def _tell_lead_artists(actor: Any, session: CourseSession, change: str) -> None:
    """In-app and (by their choice) by email, to each lead artist but the one who did it."""
    course = session.course
    text = f"{course.title}: the session {change}"
    for artist in course.lead_artists:
        if actor is None or artist.id != getattr(actor, "id", None):
            notify(user=artist, text=text, link=f"/courses/{course.id}", kind="session_changed")
            messages.session_changed(session, artist, text)


def course_end(course_id: int) -> date | None:
    """The date of the course's last session that is not cancelled (`rules.course_end`)."""
    return rules.course_end(
        db.session.scalars(
            select(CourseSession.date).where(
                CourseSession.course_id == course_id,
                CourseSession.status != SessionStatus.CANCELLED,
            )
        )
    )


# Enrolment and the waiting list --------------------------------------------------------


def places_taken(course: Course) -> int:
    """Places enrolled, or offered from the waiting list and not yet answered."""
    return (
        db.session.scalar(
            select(func.count()).where(
                Enrolment.course_id == course.id, Enrolment.status.in_(HOLDS_PLACE)
            )
        )
        or 0
    )


@dataclass(frozen=True)
class Places:
    """A course's places as everyone sees them, counted from all its enrolments."""

    capacity: int
    enrolled: int
    waiting: int
    offered: int = 0  # held for someone from the waiting list until they answer

    @property
    def left(self) -> int:
        return rules.places_free(self.capacity, self.enrolled + self.offered)


def course_places(course: Course) -> Places:
    counts = dict(
        db.session.execute(
            select(Enrolment.status, func.count())
            .where(Enrolment.course_id == course.id, Enrolment.status.in_(ACTIVE_ENROLMENT))
            .group_by(Enrolment.status)
        ).all()
    )
    return Places(
        course.capacity,
        counts.get(EnrolmentStatus.ENROLLED, 0),
        counts.get(EnrolmentStatus.WAITLISTED, 0),
        counts.get(EnrolmentStatus.OFFERED, 0),
    )


def places_left(course: Course) -> int:
    return course_places(course).left


def waitlist_position(enrolment: Enrolment) -> int | None:
    """Where someone waiting stands on the course's waiting list (1: offered the next place)."""
    if enrolment.status is not EnrolmentStatus.WAITLISTED or enrolment.waitlisted_at is None:
        return None
    waiting = db.session.execute(
        select(Enrolment.id, Enrolment.waitlisted_at).where(
            Enrolment.course_id == enrolment.course_id,
            Enrolment.status == EnrolmentStatus.WAITLISTED,
        )
    ).all()
    line = rules.in_waiting_order(waiting, lambda row: rules.waiting_order(row[1], row[0]))
    ids = [row[0] for row in line]
    return ids.index(enrolment.id) + 1 if enrolment.id in ids else None


def _lock_course(course: Course, referral: Referral | None = None) -> None:
    """Lock the course, then the referral: always in that order, so rivals never deadlock.

    On PostgreSQL two link workers enrolling at once queue here, so the last place goes to one
    of them; SQLite's writing transactions already hold the database lock.
    """
    db.session.execute(select(Course.id).where(Course.id == course.id).with_for_update())
    if referral is not None:
        db.session.execute(select(Referral.id).where(Referral.id == referral.id).with_for_update())
        db.session.refresh(referral)  # its status as the lock holder left it


def sessions_left(course_ids: Collection[int], today: date) -> dict[int, SessionsLeft]:
    """Each course's sessions (not cancelled) and those still to come, in one query."""
    to_come = (CourseSession.date >= today) & (CourseSession.status == SessionStatus.PLANNED)
    rows = db.session.execute(
        select(
            CourseSession.course_id,
            func.count(),
            func.count(case((to_come, CourseSession.id))),
        )
        .where(
            CourseSession.course_id.in_(course_ids),
            CourseSession.status != SessionStatus.CANCELLED,
        )
        .group_by(CourseSession.course_id)
    )
    found = {course_id: SessionsLeft(left, total) for course_id, total, left in rows}
    return {course_id: found.get(course_id, SessionsLeft(0, 0)) for course_id in course_ids}


def enrol(
    actor: User,
    referral: Referral,
    course: Course,
    *,
    today: date,
    at: datetime | None = None,
    late_start_confirmed: bool = False,
) -> Enrolment:
    """Place an assessed referral on a course, or on its waiting list when it is full.

    A course too far gone for the person to complete is refused unless the late start is
    confirmed: the person enrolling has been told, and says so.
    """
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
    if dob is not None:
        age = age_on(dob, rules.age_checked_on(course.start_date, today))
        if not rules.in_age_range(age, course.min_age, course.max_age):
            raise CourseRuleBroken("This person is outside the course's age range", "referral_id")
    end = course_end(course.id)
    if end is not None and end < today:
        raise CourseRuleBroken("This course has finished", "course_id")
    progress = sessions_left([course.id], today)[course.id]
    if progress.too_late_to_complete and not late_start_confirmed:
        raise CourseRuleBroken(
            f"{progress.warning()}. Confirm the late start to enrol anyway",
            "late_start_confirmed",
        )

    enrolment = db.session.scalar(
        select(Enrolment).where(
            Enrolment.course_id == course.id, Enrolment.referral_id == referral.id
        )
    ) or Enrolment(course_id=course.id, referral_id=referral.id)
    enrolment.created_by_id = actor.id
    enrolment.withdrawn_at = None
    enrolment.withdrawn_reason = ""
    enrolment.status, target = rules.enrolment_outcome(course.capacity, places_taken(course))
    if enrolment.status is EnrolmentStatus.ENROLLED:
        enrolment.enrolled_at = at
    else:
        enrolment.waitlisted_at = at
    db.session.add(enrolment)
    db.session.flush()
    transition(actor, referral, target, by=Actor.SYSTEM, note=course.title, at=at, today=today)
    record(actor, "enrolment.created", enrolment, status=enrolment.status.value)
    if enrolment.status is EnrolmentStatus.ENROLLED:
        messages.enrolment_confirmed(enrolment, today=today)
    return enrolment


def withdraw(
    actor: User | None,
    enrolment: Enrolment,
    reason: str,
    *,
    today: date,
    close_as: Status | None = None,
    note: str = "",
) -> Enrolment | None:
    """Take someone off a course; a freed place (theirs, or one offered to them) is offered
    to the first person waiting.

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
    held_place = rules.holds_place(enrolment.status)
    enrolment.status = EnrolmentStatus.WITHDRAWN
    enrolment.offer_expires_on = None
    enrolment.withdrawn_at = utcnow()
    enrolment.withdrawn_reason = reason.strip()
    referral = enrolment.referral
    after = rules.referral_after_withdrawal(referral.status)
    if close_as is not None:
        transition(actor, referral, close_as, reason=reason, note=note, today=today)
    elif after is Status.ASSESSED:
        transition(
            actor,
            referral,
            Status.ASSESSED,
            by=Actor.SYSTEM,
            note=f"Taken off {enrolment.course.title}: {reason.strip()}",
            today=today,
        )
    elif after is not None:
        transition(actor, referral, after, reason=reason, today=today)
    record(actor, "enrolment.withdrawn", enrolment)
    db.session.flush()
    if held_place:
        offered = _fill_from_waiting_list(actor, enrolment.course, today=today)
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


def _fill_from_waiting_list(
    actor: Any, course: Course, *, today: date | None = None
) -> list[Enrolment]:
    """Offer free places to the people waiting longest, and tell them and their link workers.

    The place is held for each (offered) until the end of the day `rules.offer_reply_by` gives:
    they, or their link worker, accept or decline it; unanswered by then, `expire_offers` passes
    it to the next person waiting.
    """
    today = today or clock.today()
    offered: list[Enrolment] = []
    free = rules.places_free(course.capacity, places_taken(course))
    if free == 0:
        return offered
    waiting = db.session.scalars(
        select(Enrolment).where(
            Enrolment.course_id == course.id, Enrolment.status == EnrolmentStatus.WAITLISTED
        )
    ).all()
    reply_by = rules.offer_reply_by(today)
    for enrolment in rules.offered_next(
        waiting, free, lambda e: rules.waiting_order(e.waitlisted_at, e.id)
    ):
        enrolment.status = EnrolmentStatus.OFFERED
        enrolment.offer_expires_on = reply_by
        referral = enrolment.referral
        text = (
            f"R{referral.id} has been offered a place on {course.title} from the waiting "
            f"list. Let them know: it passes to the next person unless accepted by "
            f"{reply_by:%d/%m/%Y}."
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
        record(actor, "enrolment.offered_place", enrolment, reply_by=reply_by.isoformat())
        messages.place_offered(enrolment, today=today)
        offered.append(enrolment)
    return offered


def _open_offer(enrolment: Enrolment) -> None:
    """Lock the course and referral, then make sure the offer is still open."""
    _lock_course(enrolment.course, enrolment.referral)
    db.session.refresh(enrolment)
    if enrolment.status is not EnrolmentStatus.OFFERED:
        raise CourseRuleBroken("This place is no longer on offer", "status")


def accept_offer(actor: User | None, enrolment: Enrolment, *, today: date) -> Enrolment:
    """The person (or their link worker for them) takes the place offered: enrolled."""
    _open_offer(enrolment)
    if enrolment.offer_expires_on is not None and enrolment.offer_expires_on < today:
        raise CourseRuleBroken("The date to accept this place by has passed", "status")
    enrolment.status = EnrolmentStatus.ENROLLED
    enrolment.enrolled_at = utcnow()
    enrolment.offer_expires_on = None
    transition(
        actor,
        enrolment.referral,
        Status.ENROLLED,
        by=Actor.SYSTEM,
        note=f"Accepted a place on {enrolment.course.title} from the waiting list",
        today=today,
    )
    record(actor, "enrolment.offer_accepted", enrolment)
    messages.enrolment_confirmed(enrolment, today=today)
    return enrolment


def decline_offer(actor: User | None, enrolment: Enrolment, *, today: date) -> Enrolment | None:
    """The person (or their link worker for them) does not want the place: they come off the
    course, to be matched again, and the place is offered to the next person waiting.
    Returns that person's enrolment, if any."""
    _open_offer(enrolment)
    record(actor, "enrolment.offer_declined", enrolment)
    return withdraw(actor, enrolment, "Declined the place offered", today=today)


def expire_offers(today: date) -> int:
    """Pass on every place offered and not accepted by its date: the person comes off the
    course (to be matched again) and the next person waiting is offered it. Each offer is
    passed on once: under the course's lock, only an offer still open and past its date is."""
    due = db.session.scalars(
        select(Enrolment)
        .where(Enrolment.status == EnrolmentStatus.OFFERED, Enrolment.offer_expires_on < today)
        .order_by(Enrolment.offer_expires_on, Enrolment.id)
    ).all()
    passed = 0
    for enrolment in due:
        _lock_course(enrolment.course, enrolment.referral)
        db.session.refresh(enrolment)
        reply_by = enrolment.offer_expires_on
        if enrolment.status is not EnrolmentStatus.OFFERED or reply_by is None or reply_by >= today:
            continue
        record(None, "enrolment.offer_expired", enrolment, reply_by=reply_by.isoformat())
        reason = f"Did not accept the place by {reply_by:%d/%m/%Y}"
        withdraw(None, enrolment, reason, today=today)
        passed += 1
    return passed


# Registers -----------------------------------------------------------------------------


class RegisterRefused(CourseRuleBroken):
    """A register that cannot be saved; `errors` maps entry fields to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


def register_enrolments(session: CourseSession) -> list[Enrolment]:
    """The people a register lists: each place `rules.on_register` for the session's day, plus
    anyone already marked at it."""
    marked = exists().where(
        Attendance.session_id == session.id, Attendance.enrolment_id == Enrolment.id
    )
    rows = db.session.execute(
        select(Enrolment, marked.label("marked"))
        .where(
            Enrolment.course_id == session.course_id,
            Enrolment.status.in_(rules.ON_REGISTER) | marked,
        )
        .options(selectinload(Enrolment.referral).selectinload(Referral.patient))
        .order_by(Enrolment.id)
    ).all()
    return [
        enrolment
        for enrolment, was_marked in rows
        if was_marked or rules.on_register(enrolment.status, enrolment.enrolled_at, session.date)
    ]


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
    errors = entry_problems(entries, {e.id: e.referral.patient.full_name for e in allowed.values()})
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
    mark_returns_changed(session.course.contract_id, session.date)
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
        if rules.starts(entry.status, allowed[entry.enrolment_id].referral.status)
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


def complete_course(actor: Any, course: Course, *, today: date) -> list[Enrolment]:
    """At the course end, mark who completed it and send the message back for each."""
    delivered, attended = attendance_counts(course.id)
    completed = []
    for enrolment in db.session.scalars(
        select(Enrolment)
        .where(Enrolment.course_id == course.id, Enrolment.status == EnrolmentStatus.ENROLLED)
        .options(selectinload(Enrolment.referral))
    ):
        if rules.completes(attended.get(enrolment.id, 0), delivered):
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


def course_days(enrolments: Sequence[Enrolment]) -> dict[int, CourseDays]:
    """The days that decide each enrolment's questionnaire timepoints, in two queries."""
    sessions: dict[int, list[date]] = {}
    for course_id, day in db.session.execute(
        select(CourseSession.course_id, CourseSession.date).where(
            CourseSession.course_id.in_({e.course_id for e in enrolments}),
            CourseSession.status != SessionStatus.CANCELLED,
        )
    ):
        sessions.setdefault(course_id, []).append(day)
    attended: dict[int, list[date]] = {}
    for enrolment_id, day in db.session.execute(
        select(Attendance.enrolment_id, CourseSession.date)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .where(
            Attendance.enrolment_id.in_([e.id for e in enrolments]),
            Attendance.status == AttendanceStatus.ATTENDED,
        )
    ):
        attended.setdefault(enrolment_id, []).append(day)
    return {
        e.id: CourseDays(sessions.get(e.course_id, []), attended.get(e.id, [])) for e in enrolments
    }


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
    """Score and store a questionnaire. Raises InvalidScores for bad answers, and
    CourseRuleBroken for a date out of bounds or a timepoint the person's course does not allow
    on that date."""
    with _dates_checked():
        dates.check_recorded(recorded_on, today)
    problem = timepoint_problem(timepoint, recorded_on, course_days([enrolment])[enrolment.id])
    if problem is not None:
        raise CourseRuleBroken(problem, "timepoint")
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


def enrolment_viewed(actor: Any, enrolment: Enrolment, **detail: Any) -> None:
    """A person's place on a course shown: audited, kept whatever becomes of the request."""
    record_view(actor, "enrolment.viewed", enrolment, referral_id=enrolment.referral_id, **detail)


def people_viewed(actor: Any, action: str, enrolments: Sequence[Enrolment], **detail: Any) -> None:
    """A course page or register shown: one audit entry per person on it, naming their place."""
    record_views(actor, action, [(e, {"referral_id": e.referral_id, **detail}) for e in enrolments])
