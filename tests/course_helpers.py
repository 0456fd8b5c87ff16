"""Helpers for course tests: assessed referrals, ready to enrol, and enrolling from a course's
first day. Contracts, venues and courses come from `tests/factories.py`."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from referrals import clock
from referrals.auth.models import OrganisationKind, Role, User
from referrals.clock import LONDON
from referrals.courses.models import Course, Enrolment
from referrals.courses.services import (
    enrol,
)
from referrals.intake.services import record_conversation
from tests import factories
from tests.intake_helpers import make_referral, nhs_numbers

_numbers = nhs_numbers()


def assessed_referral(actor: User | None = None, **overrides: Any) -> Any:
    """A referral that has had its "what matters" conversation, ready to enrol."""
    actor = actor or factories.make_user(Role.LINK_WORKER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    referral = make_referral(actor, practice, nhs=next(_numbers), **overrides)
    record_conversation(actor, referral, held_on=clock.today(), what_matters="Singing")
    return referral


def from_start(course: Course) -> datetime:
    """Early on the course's first day (in England): enrolled with `at=from_start(course)`,
    a person is on every register of the course."""
    return datetime.combine(course.start_date, time(8, 0), tzinfo=LONDON)


def enrol_from_start(actor: User, course: Course, referral: Any = None) -> Enrolment:
    """Enrol `referral` (by default a new assessed one) as of the course's first day."""
    referral = referral or assessed_referral(actor)
    day = min(course.start_date, clock.today())
    return enrol(actor, referral, course, today=day, at=from_start(course))
