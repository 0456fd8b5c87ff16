"""Directory and session lists: filtered, eager-loaded, with places left in one grouped query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, String, and_, cast, false, func, select, true
from sqlalchemy.orm import joinedload

from referrals.auth.models import Organisation
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
from referrals.courses.scope import course_scope, register_scope
from referrals.courses.services import attendance_counts, waitlist_position
from referrals.extensions import db
from referrals.places.services import postcode_clause, understand


@dataclass(frozen=True)
class DirectoryFilters:
    art_form: str | None = None
    pathway: str | None = None
    weekday: int | None = None  # Monday 0 … Sunday 6
    area: str = ""  # a postcode district ("GL1"), a postcode area ("GL") or a whole postcode
    has_places: bool | None = None  # True: a place left; False: full; None: either
    include_finished: bool = False
    provider_id: int | None = None


def _taken_counts(courses: Any = None) -> Any:
    """Places taken per course: enrolled, or offered and not yet answered."""
    return (
        select(Enrolment.course_id, func.count().label("taken"))
        .where(Enrolment.status.in_(HOLDS_PLACE), _among(Enrolment.course_id, courses))
        .group_by(Enrolment.course_id)
        .subquery()
    )


def _waiting_counts(courses: Any = None) -> Any:
    return (
        select(Enrolment.course_id, func.count().label("waiting"))
        .where(Enrolment.status == EnrolmentStatus.WAITLISTED, _among(Enrolment.course_id, courses))
        .group_by(Enrolment.course_id)
        .subquery()
    )


def _course_ends(courses: Any = None) -> Any:
    return (
        select(
            CourseSession.course_id,
            func.max(CourseSession.date).label("ends_on"),
            func.min(CourseSession.date).label("starts_on"),
        )
        .where(
            CourseSession.status != SessionStatus.CANCELLED,
            _among(CourseSession.course_id, courses),
        )
        .group_by(CourseSession.course_id)
        .subquery()
    )


def _among(column: Any, courses: Any) -> Any:
    return true() if courses is None else column.in_(courses)


def _running_or_to_come(today: date) -> Any:
    """Ids of courses with a session (not cancelled) today or later: those not yet finished.

    `course_id + 0`: an expression rather than the column, so that with DISTINCT SQLite reads
    only the range from today in `ix_course_session_date_status_course_id` instead of scanning
    every session by course to avoid sorting (without statistics it cannot tell which is less).
    """
    return select((CourseSession.course_id + 0).label("course_id")).where(
        CourseSession.date >= today, CourseSession.status != SessionStatus.CANCELLED
    )


def directory_query(user: Any, filters: DirectoryFilters, today: date) -> Select[Any]:
    """Rows of (course, places taken, waiting, starts_on, ends_on), soonest start first."""
    # Unless finished courses are asked for, count places only for the courses still to run,
    # not for the scheme's whole history.
    # They are a few hundred at most: fetched first, the database plans the counts for exactly
    # those courses (by index) rather than guessing how many a subquery yields.
    courses = (
        None
        if filters.include_finished
        else list(db.session.scalars(_running_or_to_come(today).distinct()))
    )
    taken, waiting = _taken_counts(courses), _waiting_counts(courses)
    ends = _course_ends(courses)
    taken_n = func.coalesce(taken.c.taken, 0)
    query = (
        select(
            Course,
            taken_n.label("taken"),
            func.coalesce(waiting.c.waiting, 0).label("waiting"),
            ends.c.starts_on,
            ends.c.ends_on,
        )
        .join(Venue, Venue.id == Course.venue_id)
        .outerjoin(taken, taken.c.course_id == Course.id)
        .outerjoin(waiting, waiting.c.course_id == Course.id)
        .outerjoin(ends, ends.c.course_id == Course.id)
        .where(course_scope(user))
        .options(joinedload(Course.provider), joinedload(Course.venue))
    )
    if courses is not None:
        query = query.where(Course.id.in_(courses), ends.c.ends_on >= today)
    if filters.art_form:
        query = query.where(Course.art_form == filters.art_form)
    if filters.pathway:
        # Pathways are a short JSON list; a LIKE on its text works the same on both databases.
        query = query.where(cast(Course.pathways, String).like(f'%"{filters.pathway}"%'))
    if filters.weekday is not None:
        query = query.where(_weekday_is(Course.start_date, filters.weekday))
    if filters.area.strip():
        where = understand(filters.area)
        # Whole districts only: GL1 is not GL16. Text that is no postcode matches nothing.
        query = query.where(postcode_clause(Venue.postcode, where) if where else false())
    if filters.provider_id is not None:
        query = query.where(Course.provider_id == filters.provider_id)
    if filters.has_places is not None:
        full = taken_n >= Course.capacity
        query = query.where(~full if filters.has_places else full)
    return query.order_by(ends.c.starts_on, Course.title, Course.id)


def _weekday_is(column: Any, weekday: int) -> Any:
    """Monday 0 … Sunday 6, on SQLite and PostgreSQL alike."""
    if db.engine.dialect.name == "sqlite":
        # strftime('%w') counts from Sunday 0.
        return func.strftime("%w", column) == str((weekday + 1) % 7)
    return func.extract("isodow", column) == weekday + 1


def sessions_for_user(user: Any, start: date, end: date) -> Select[Any]:
    return (
        select(CourseSession)
        .join(CourseSession.course)
        .where(register_scope(user), and_(CourseSession.date >= start, CourseSession.date <= end))
        .options(joinedload(CourseSession.course).joinedload(Course.venue))
        .order_by(CourseSession.date, CourseSession.start_time, CourseSession.id)
    )


def my_sessions(user: Any, today: date) -> dict[str, list[CourseSession]]:
    """Today first, then registers still to take from the last week, then the next fortnight."""
    rows = db.session.scalars(
        sessions_for_user(user, today - timedelta(days=7), today + timedelta(days=14))
    ).all()
    return {
        "today": [s for s in rows if s.date == today],
        "to_take": [s for s in rows if s.date < today and s.status is SessionStatus.PLANNED],
        "upcoming": [s for s in rows if s.date > today],
        "recent": [s for s in rows if s.date < today and s.status is not SessionStatus.PLANNED],
    }


def register_counts(session_ids: list[int]) -> dict[int, int]:

    if not session_ids:
        return {}
    return dict(
        db.session.execute(
            select(Attendance.session_id, func.count())
            .where(
                Attendance.session_id.in_(session_ids),
                Attendance.status == AttendanceStatus.ATTENDED,
            )
            .group_by(Attendance.session_id)
        ).all()
    )


@dataclass(frozen=True)
class EnrolmentSummary:
    enrolment: Any
    position: int | None
    attended: int
    delivered: int


def referral_enrolments(referral: Any) -> list[EnrolmentSummary]:
    """A referral's courses with waiting-list position and attendance, newest first."""

    enrolments = db.session.scalars(
        select(Enrolment)
        .where(Enrolment.referral_id == referral.id)
        .options(joinedload(Enrolment.course))
        .order_by(Enrolment.created_at.desc(), Enrolment.id.desc())
    ).all()
    summaries = []
    for enrolment in enrolments:
        delivered, attended = attendance_counts(enrolment.course_id)
        summaries.append(
            EnrolmentSummary(
                enrolment, waitlist_position(enrolment), attended.get(enrolment.id, 0), delivered
            )
        )
    return summaries


def published_query(today: date) -> Select[Any]:
    """Rows of (course, places taken, starts_on, ends_on) for the open directory: courses running
    or still to start, of providers that are active. Finished courses are never published."""

    courses = list(db.session.scalars(_running_or_to_come(today).distinct()))
    taken, ends = _taken_counts(courses), _course_ends(courses)
    return (
        select(Course, func.coalesce(taken.c.taken, 0), ends.c.starts_on, ends.c.ends_on)
        .join(Organisation, Organisation.id == Course.provider_id)
        .outerjoin(taken, taken.c.course_id == Course.id)
        .join(ends, ends.c.course_id == Course.id)
        .where(Course.id.in_(courses), ends.c.ends_on >= today, Organisation.active.is_(True))
        .options(joinedload(Course.provider), joinedload(Course.venue))
        .order_by(ends.c.starts_on, Course.title, Course.id)
    )
