"""Builders for course tests: contracts, venues, courses and assessed referrals."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses.models import Contract, Course, Enrolment, Venue
from referrals.courses.schedule import Frequency, Schedule
from referrals.courses.services import (
    ContractFields,
    CourseFields,
    VenueFields,
    create_course,
    create_venue,
    enrol,
    save_contract,
)
from referrals.intake.services import record_conversation
from referrals.vocab import ArtForm, Pathway
from tests import factories
from tests.intake_helpers import make_referral, nhs_numbers

_numbers = nhs_numbers()


def make_contract(**overrides: Any) -> Contract:
    commissioner = overrides.pop("commissioner", None) or factories.make_organisation(
        OrganisationKind.COMMISSIONER
    )
    fields = {
        "name": f"Contract {next(_numbers)}",
        "commissioner": commissioner,
        "start_date": date(2025, 4, 1),
        "end_date": date(2027, 3, 31),
    }
    fields.update(overrides)
    return save_contract(None, ContractFields(**fields), today=date.today())


def make_venue(**overrides: Any) -> Venue:
    fields = {
        "name": "St Mary's Church Hall",
        "address": "1 Church Lane, Gloucester",
        "postcode": "GL1 2AB",
        "accessibility": "Step-free entrance, hearing loop",
    }
    fields.update(overrides)
    return create_venue(None, VenueFields(**fields))


def make_course(
    provider: Organisation | None = None,
    *,
    capacity: int = 10,
    start: date | None = None,
    sessions: int = 8,
    contract: Contract | None = None,
    **overrides: Any,
) -> Course:
    provider = provider or factories.make_organisation(OrganisationKind.PROVIDER)
    schedule = Schedule(
        start_date=start or date.today() - timedelta(days=14),
        start_time=time(10, 0),
        duration_minutes=120,
        frequency=Frequency.WEEKLY,
        sessions=sessions,
        skip_bank_holidays=False,
    )
    fields = {
        "title": "Singing for Better Breathing",
        "art_form": ArtForm.SINGING,
        "provider": provider,
        "contract": contract or make_contract(),
        "venue": make_venue(),
        "capacity": capacity,
        "schedule": schedule,
        "pathways": [Pathway.COPD_ASTHMA],
    }
    fields.update(overrides)
    return create_course(None, CourseFields(**fields))


def assessed_referral(actor: User | None = None, **overrides: Any) -> Any:
    """A referral that has had its "what matters" conversation, ready to enrol."""
    actor = actor or factories.make_user(Role.LINK_WORKER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    referral = make_referral(actor, practice, nhs=next(_numbers), **overrides)
    record_conversation(actor, referral, held_on=date.today(), what_matters="Singing")
    return referral


def from_start(course: Course) -> datetime:
    """Early on the course's first day (in England): enrolled with `at=from_start(course)`,
    a person is on every register of the course."""
    return datetime.combine(course.start_date, time(8, 0), tzinfo=ZoneInfo("Europe/London"))


def enrol_from_start(actor: User, course: Course, referral: Any = None) -> Enrolment:
    """Enrol `referral` (by default a new assessed one) as of the course's first day."""
    referral = referral or assessed_referral(actor)
    day = min(course.start_date, date.today())
    return enrol(actor, referral, course, today=day, at=from_start(course))
