"""Who may see which courses, sessions and enrolments: one loader per resource."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, exists, false, or_, select, true

from referrals.auth.models import Role
from referrals.courses.models import Attendance, Course, CourseSession, Enrolment
from referrals.courses.rules import ON_REGISTER
from referrals.extensions import db
from referrals.intake.models import Referral


def course_scope(user: Any) -> Any:
    """Artists see their own provider's courses; other staff see the whole directory."""
    if user.role == Role.ARTIST:
        return Course.provider_id == user.organisation_id
    return true()


def sees_contract_cost(user: Any) -> bool:
    """A course's cost per session is what the contract pays: for admins and commissioners,
    never shown to referrers, link workers or artists as a price."""
    return user.role in (Role.ADMIN, Role.COMMISSIONER)


def get_course_or_404(course_id: int, user: Any, *loaders: Any) -> Course:
    """`loaders`: what the page shows of the course, loaded with it."""
    query = select(Course).where(Course.id == course_id, course_scope(user))
    return db.first_or_404(query.options(*loaders) if loaders else query)


def register_scope(user: Any) -> Any:
    """Registers are taken by the provider's artists, and corrected by admins."""
    if user.role == Role.ADMIN:
        return true()
    if user.role == Role.ARTIST:
        return Course.provider_id == user.organisation_id
    return false()


def sessions_for_registers(user: Any) -> Select[Any]:
    return select(CourseSession).join(CourseSession.course).where(register_scope(user))


def get_register_session_or_404(session_id: int, user: Any, *loaders: Any) -> CourseSession:
    """`loaders`: what the page shows of the session, loaded with it."""
    query = sessions_for_registers(user).where(CourseSession.id == session_id)
    return db.first_or_404(query.options(*loaders) if loaders else query)


def get_session_or_404(session_id: int, user: Any) -> CourseSession:
    """A session as the directory shows it (dates and status, no people)."""
    return db.first_or_404(
        select(CourseSession)
        .join(CourseSession.course)
        .where(CourseSession.id == session_id, course_scope(user))
    )


def enrolment_scope(user: Any) -> Any:
    if user.role in (Role.ADMIN, Role.LINK_WORKER):
        return true()
    if user.role == Role.ARTIST:
        # Artists see the people on their provider's registers (`register_enrolments`): those
        # on a course, and anyone already marked at one of its sessions; never the waiting list.
        return and_(
            Course.provider_id == user.organisation_id,
            or_(
                Enrolment.status.in_(ON_REGISTER),
                exists().where(Attendance.enrolment_id == Enrolment.id),
            ),
        )
    if user.role == Role.REFERRER:
        return Referral.gp_practice_id == user.organisation_id
    return false()


def scoped_enrolments(user: Any) -> Select[Any]:
    return (
        select(Enrolment)
        .join(Enrolment.course)
        .join(Enrolment.referral)
        .where(enrolment_scope(user))
    )


def get_enrolment_or_404(enrolment_id: int, user: Any) -> Enrolment:
    return db.first_or_404(scoped_enrolments(user).where(Enrolment.id == enrolment_id))
