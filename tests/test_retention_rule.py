"""How long a person's records are kept whole: one rule (`kept_until`), and the scheduled job's
query agrees with it at every boundary, children's 25th birthdays included."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from referrals.auth.models import OrganisationKind
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.intake.models import Patient
from referrals.retention import expired_patients, kept_until
from tests import factories
from tests.test_retention import _person, _referral

YEARS = 8


@pytest.mark.parametrize(
    ("born", "referred", "closed", "until"),
    [
        # An adult: 8 years after the last referral closed.
        (date(1980, 5, 1), date(2020, 1, 6), date(2020, 3, 10), date(2028, 3, 10)),
        # Referred at 9: kept to their 25th birthday, later than 8 years.
        (date(2010, 5, 1), date(2019, 6, 3), date(2019, 9, 2), date(2035, 5, 1)),
        # Referred the day before their 18th birthday: a child, but 8 years is later.
        (date(2003, 6, 2), date(2021, 6, 1), date(2021, 9, 1), date(2029, 9, 1)),
        # Referred at 16, last seen a few days less than 8 years before their 25th birthday.
        (date(2003, 9, 20), date(2020, 6, 1), date(2020, 9, 10), date(2028, 9, 20)),
        # Referred on their 18th birthday: an adult (the 25th birthday is earlier anyway).
        (date(2003, 9, 20), date(2021, 9, 20), date(2021, 12, 1), date(2029, 12, 1)),
        # No date of birth: 8 years.
        (None, date(2019, 6, 3), date(2019, 9, 2), date(2027, 9, 2)),
    ],
)
def test_kept_until(born: date | None, referred: date, closed: date, until: date) -> None:
    assert kept_until(born, referred, closed, years=YEARS) == until


def test_the_job_pseudonymises_exactly_the_people_the_rule_no_longer_keeps(app: Any) -> None:
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    first_day = date(2026, 7, 1)
    cases: list[tuple[Patient, date | None, date, date]] = []

    def person(born: date | None, referred: date, closed: date) -> None:
        patient = _person(practice, given_name="Kept", family_name="Person", date_of_birth=born)
        _referral(patient, practice, [(Status.RECEIVED, referred), (Status.DECLINED, closed)])
        cases.append((patient, born, referred, closed))

    long_ago = (date(2011, 1, 10), date(2011, 3, 1))
    person(date(2001, 7, 1), *long_ago)  # referred at 9; 25 on the first day
    person(date(2001, 7, 2), *long_ago)  # 25 on the second day
    person(date(1993, 1, 10), *long_ago)  # referred on their 18th birthday: an adult
    person(date(1993, 1, 11), *long_ago)  # a child at referral, 25 long ago
    person(None, *long_ago)
    person(date(1960, 2, 2), date(2018, 5, 1), date(2018, 6, 30))  # 8 years the day before
    person(date(1960, 2, 2), date(2018, 5, 1), date(2018, 7, 1))  # 8 years on the first day
    db.session.commit()

    for today in (first_day + timedelta(days=n) for n in range(3)):
        due = {p.id for p in db.session.scalars(expired_patients(today, YEARS))}
        rule = {
            patient.id
            for patient, born, referred, closed in cases
            if today > kept_until(born, referred, closed, years=YEARS)
        }
        assert due == rule, today
    ids = [patient.id for patient, *_ in cases]
    on_first_day = {p.id for p in db.session.scalars(expired_patients(first_day, YEARS))}
    assert on_first_day == {ids[2], ids[3], ids[4], ids[5]}
    on_second_day = {
        p.id for p in db.session.scalars(expired_patients(first_day + timedelta(1), YEARS))
    }
    assert on_second_day == {ids[0], ids[2], ids[3], ids[4], ids[5], ids[6]}
