"""The tests' factories: valid organisations, people, contracts, venues and courses with
sensible defaults, made through the services as a user would make them. They flush, never
commit. Referral builders are in `tests/intake_helpers.py`, enrolment helpers in
`tests/course_helpers.py`, query counting in `tests/query_counts.py`, checks of pages and stored
rows in `tests/pages.py`."""

from __future__ import annotations

import itertools
from datetime import date, time, timedelta
from typing import Any

from referrals import clock
from referrals.auth.models import (
    ROLE_ORGANISATION_KINDS,
    Organisation,
    OrganisationKind,
    Role,
    User,
)
from referrals.auth.services import (
    OrganisationFields,
    UserFields,
    create_organisation,
    create_user,
)
from referrals.courses.models import Contract, Course, Venue
from referrals.courses.schedule import Frequency, Schedule
from referrals.courses.services import (
    ContractFields,
    CourseFields,
    VenueFields,
    create_course,
    create_venue,
    save_contract,
)
from referrals.vocab import ArtForm, Pathway

TEST_PASSWORD = "a-long-test-passphrase"
_sequence = itertools.count(1)

_DEFAULT_KIND = {
    Role.ADMIN: OrganisationKind.LINK_WORKER_SERVICE,
    Role.REFERRER: OrganisationKind.GP_PRACTICE,
    Role.LINK_WORKER: OrganisationKind.LINK_WORKER_SERVICE,
    Role.ARTIST: OrganisationKind.PROVIDER,
    Role.COMMISSIONER: OrganisationKind.COMMISSIONER,
}


def make_organisation(
    kind: OrganisationKind | str = OrganisationKind.GP_PRACTICE, **overrides: Any
) -> Organisation:
    n = next(_sequence)
    kind = OrganisationKind(kind)
    fields: dict[str, Any] = {
        "name": f"{kind.label} {n}",
        "kind": kind,
        "ods_code": f"Z{n:05d}" if kind is OrganisationKind.GP_PRACTICE else None,
        "active": True,
    }
    fields.update(overrides)
    return create_organisation(None, OrganisationFields(**fields))


def make_user(
    role: Role | str = Role.REFERRER,
    *,
    organisation: Organisation | None = None,
    password: str | None = TEST_PASSWORD,
    **overrides: Any,
) -> User:
    role = Role(role)
    n = next(_sequence)
    if organisation is None:
        organisation = make_organisation(_DEFAULT_KIND[role])
    assert organisation.kind in ROLE_ORGANISATION_KINDS[role]
    fields: dict[str, Any] = {
        "email": f"{role.value}{n}@example.test",
        "name": f"Test {role.label} {n}",
        "role": role,
        "organisation": organisation,
        "active": True,
    }
    fields.update(overrides)
    return create_user(None, UserFields(**fields), password)


def make_contract(name: str | None = None, **overrides: Any) -> Contract:
    """A contract from April 2025 to March 2027 with a new commissioner, unless overridden."""
    fields: dict[str, Any] = {
        "name": name or f"Contract {next(_sequence)}",
        "commissioner": overrides.pop("commissioner", None)
        or make_organisation(OrganisationKind.COMMISSIONER),
        "start_date": date(2025, 4, 1),
        "end_date": date(2027, 3, 31),
    }
    fields.update(overrides)
    return save_contract(None, ContractFields(**fields), today=clock.today())


def make_venue(name: str = "St Mary's Church Hall", **overrides: Any) -> Venue:
    fields: dict[str, Any] = {
        "name": name,
        "address": "1 Church Lane, Gloucester",
        "postcode": "GL1 2AB",
        "accessibility": "Step-free entrance, hearing loop",
    }
    fields.update(overrides)
    return create_venue(None, VenueFields(**fields))


def make_course(
    provider: Organisation | None = None,
    *,
    title: str = "Singing for Better Breathing",
    capacity: int = 10,
    start: date | None = None,
    sessions: int = 8,
    contract: Contract | None = None,
    venue: Venue | None = None,
    **overrides: Any,
) -> Course:
    """A weekly two-hour course of `sessions` sessions from `start` (two weeks ago by default);
    a new provider, contract and venue each unless given. Overrides name any other field of
    `CourseFields` (`schedule`, `lead_artists`, `pathways`, ...)."""
    schedule = Schedule(
        start_date=start or clock.today() - timedelta(days=14),
        start_time=time(10, 0),
        duration_minutes=120,
        frequency=Frequency.WEEKLY,
        sessions=sessions,
        skip_bank_holidays=False,
    )
    fields: dict[str, Any] = {
        "title": title,
        "art_form": ArtForm.SINGING,
        "provider": provider or make_organisation(OrganisationKind.PROVIDER),
        "contract": contract or make_contract(),
        "venue": venue or make_venue(),
        "capacity": capacity,
        "schedule": schedule,
        "pathways": [Pathway.COPD_ASTHMA],
    }
    fields.update(overrides)
    return create_course(None, CourseFields(**fields))
