"""Pseudonymised rows coarsened until none stands out in its practice.

A pseudonymised person keeps what section D of a return counts (sex, ethnic group and, as a
stand-in date of birth, their age band), and their practice. Together those can single someone
out: the only Black woman over 75 referred by a small practice. So after each pseudonymisation
the practice's pseudonymised rows are coarsened until every combination of sex, ethnic group
and age band (at their first referral) is shared by at least `PSEUDONYMISED_MIN_GROUP` people
(5): first the ethnic group of the rows in smaller groups becomes "not stated", then their sex,
then their date of birth is removed. If the rows with nothing left are still fewer, the smallest
other groups join them. A practice with fewer pseudonymised people than that has them all
coarsened.

A coarsened person is counted under "not stated" and "age unknown" when a section D figure is
made again from the records; returns already made keep the figures as they were reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from flask import current_app
from sqlalchemy import func, select

from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from referrals.intake.validation import age_on
from referrals.reports.kpi import _age_band
from referrals.vocab import Ethnicity, Sex


@dataclass(frozen=True)
class Kept:
    """What a pseudonymised row keeps that could single someone out within their practice."""

    patient_id: int
    sex: Sex
    ethnicity: Ethnicity
    age_band: str | None

    @property
    def values(self) -> tuple[Sex, Ethnicity, str | None]:
        return (self.sex, self.ethnicity, self.age_band)


NOTHING_KEPT = (Sex.NOT_STATED, Ethnicity.NOT_STATED, None)


# Coarsened in this order: the figures lose least by losing the ethnic group of a few people.
def _without_ethnicity(row: Kept) -> Kept:
    return replace(row, ethnicity=Ethnicity.NOT_STATED)


def _without_sex(row: Kept) -> Kept:
    return replace(row, sex=Sex.NOT_STATED)


def _without_age(row: Kept) -> Kept:
    return replace(row, age_band=None)


STEPS = (_without_ethnicity, _without_sex, _without_age)


def _nothing_kept(row: Kept) -> Kept:
    return Kept(row.patient_id, *NOTHING_KEPT)


def coarsened(rows: Sequence[Kept], smallest: int) -> list[Kept]:
    """`rows` (one practice's), coarsened until each row's values are shared by at least
    `smallest` rows, or everything is coarsened. Rows already in large enough groups are left
    as they are."""
    kept = list(rows)
    for coarser in STEPS:
        sizes = Counter(row.values for row in kept)
        kept = [coarser(row) if sizes[row.values] < smallest else row for row in kept]
    sizes = Counter(row.values for row in kept)
    while 0 < sizes[NOTHING_KEPT] < smallest and len(sizes) > 1:
        joining = min(
            (values for values in sizes if values != NOTHING_KEPT),
            key=lambda values: (sizes[values], str(values)),
        )
        kept = [_nothing_kept(row) if row.values == joining else row for row in kept]
        sizes = Counter(row.values for row in kept)
    return kept


def smallest_group(rows: Iterable[Kept]) -> int:
    """k of k-anonymity: how many rows share the rarest combination of values (0 if none)."""
    sizes = Counter(row.values for row in rows)
    return min(sizes.values(), default=0)


def kept_rows(practice_id: int) -> list[Kept]:
    """The practice's pseudonymised people, with their age band at their first referral."""
    first_referred = (
        select(Referral.patient_id, func.min(Referral.received_on).label("first_on"))
        .group_by(Referral.patient_id)
        .subquery()
    )
    rows = db.session.execute(
        select(
            Patient.id,
            Patient.sex,
            Patient.ethnicity,
            Patient.date_of_birth,
            first_referred.c.first_on,
        )
        .outerjoin(first_referred, first_referred.c.patient_id == Patient.id)
        .where(Patient.gp_practice_id == practice_id, Patient.anonymised_at.is_not(None))
        .order_by(Patient.id)
    ).all()
    return [
        Kept(patient_id, Sex(sex), Ethnicity(ethnicity), _band(born, first_on))
        for patient_id, sex, ethnicity, born, first_on in rows
    ]


def _band(born: date | None, on: date | None) -> str | None:
    return _age_band(age_on(born, on)) if born is not None and on is not None else None


def coarsen_practices(practice_ids: Iterable[int]) -> int:
    """Coarsen each practice's pseudonymised rows (see the module docstring); returns how
    many people were coarsened."""
    smallest = int(current_app.config["PSEUDONYMISED_MIN_GROUP"])
    changed = 0
    for practice_id in sorted(set(practice_ids)):
        rows = kept_rows(practice_id)
        for before, after in zip(rows, coarsened(rows, smallest), strict=True):
            if after == before:
                continue
            patient = db.session.get(Patient, before.patient_id)
            assert patient is not None
            patient.sex, patient.ethnicity = after.sex, after.ethnicity
            if after.age_band is None:
                patient.date_of_birth = None
            changed += 1
    db.session.flush()
    return changed
