"""The rules of a course's places: capacity and the waiting list, offers of freed places,
who is on a session's register, starting, completion and where a referral goes when its place
is given up.

Pure functions of their arguments. The course services apply them to the database; the demo
generator (`referrals.seeding.demo_courses`) plays its year forward with the same functions, so
a rule changed here changes both, and the demo's plan cannot drift from what the services do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from referrals.courses.models import (
    ACTIVE_ENROLMENT,
    HOLDS_PLACE,
    AttendanceStatus,
    EnrolmentStatus,
)
from referrals.courses.progress import completion_threshold
from referrals.courses.register_rules import on_register_until
from referrals.intake.lifecycle import Status

# A place offered from the waiting list is held this many days (to the end of the last).
OFFER_REPLY_DAYS = 3
# The places a register lists: people on the course, and those who have completed it.
ON_REGISTER = (EnrolmentStatus.ENROLLED, EnrolmentStatus.COMPLETED)

Place = TypeVar("Place")


def holds_place(status: EnrolmentStatus) -> bool:
    """Enrolled, or offered a place from the waiting list and not yet answered."""
    return status in HOLDS_PLACE


def is_active(status: EnrolmentStatus) -> bool:
    """On the course or its waiting list: a referral has at most one such enrolment."""
    return status in ACTIVE_ENROLMENT


def places_free(capacity: int, held: int) -> int:
    """Places nobody holds, when `held` places are taken."""
    return max(0, capacity - held)


def is_full(capacity: int, held: int) -> bool:
    return places_free(capacity, held) == 0


def enrolment_outcome(capacity: int, held: int) -> tuple[EnrolmentStatus, Status]:
    """Where someone enrolled now goes, and their referral with them: a place while one is
    free, else the waiting list."""
    if is_full(capacity, held):
        return EnrolmentStatus.WAITLISTED, Status.WAITLISTED
    return EnrolmentStatus.ENROLLED, Status.ENROLLED


def waiting_order(waitlisted_at: datetime | None, enrolment_id: int) -> tuple[datetime, int]:
    """The waiting list's order: the longest waiting first, and the first recorded on a tie."""
    return (waitlisted_at or datetime.max.replace(tzinfo=UTC), enrolment_id)


WaitingOrder = Callable[[Place], tuple[datetime, int]]


def in_waiting_order(waiting: Iterable[Place], order: WaitingOrder[Place]) -> list[Place]:
    """A course's waiting list in turn; `order` gives each place's `waiting_order`."""
    return sorted(waiting, key=order)


def offered_next(waiting: Iterable[Place], free: int, order: WaitingOrder[Place]) -> list[Place]:
    """Who is offered `free` freed places: the people waiting longest, one place each."""
    if free <= 0:
        return []
    return in_waiting_order(waiting, order)[:free]


def offer_reply_by(offered_on: date) -> date:
    """The last day to accept a place offered on `offered_on`; after it the place passes on."""
    return offered_on + timedelta(days=OFFER_REPLY_DAYS)


def age_checked_on(course_start: date, today: date) -> date:
    """The day a person's age is checked against a course's range: the day they would join it
    (its start, or today once it has started)."""
    return course_start if course_start > today else today


def in_age_range(age: int, min_age: int | None, max_age: int | None) -> bool:
    return (min_age is None or age >= min_age) and (max_age is None or age <= max_age)


def on_register(status: EnrolmentStatus, enrolled_at: datetime | None, session_day: date) -> bool:
    """Whether a place belongs on the register of a session on `session_day`: on the course (or
    completed it), so not withdrawn nor waiting, and taken by the end of that day. Someone
    already marked at the session stays on its register whatever happened since."""
    joined_by_then = enrolled_at is None or enrolled_at < on_register_until(session_day)
    return status in ON_REGISTER and joined_by_then


def starts(attendance: AttendanceStatus, referral_status: Status) -> bool:
    """A referral starts at the first session the person attends after being enrolled."""
    return attendance is AttendanceStatus.ATTENDED and referral_status is Status.ENROLLED


def course_end(days_not_cancelled: Iterable[date]) -> date | None:
    """A course ends on its last session not cancelled; its register decides completion."""
    return max(days_not_cancelled, default=None)


def completes(attended: int, delivered: int) -> bool:
    """Someone still on a course at its end completes it by attending at least 75% of its
    delivered sessions, rounded up (KPI B7); a course that delivered none completes nobody."""
    return delivered > 0 and attended >= completion_threshold(delivered)


def referral_after_withdrawal(status: Status) -> Status | None:
    """Where a referral goes when its place or waiting-list spot is given up: back to be
    matched again before the person has started, withdrawn after; None when it has already
    moved on (closed by hand first)."""
    if status in (Status.ENROLLED, Status.WAITLISTED):
        return Status.ASSESSED
    if status is Status.STARTED:
        return Status.WITHDRAWN
    return None
