"""Pseudonymised rows: no one stands out within their practice (k-anonymity, k >= 5, over what is
kept: practice, postcode, sex, ethnic group and age band), and every return made before is as it
was, over the whole demo scheme pseudonymised at once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from referrals.courses.models import Contract
from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from referrals.intake.validation import age_on
from referrals.pseudonymity import NOTHING_KEPT, Kept, coarsened, smallest_group
from referrals.reports.kpi import AGE_BANDS, _age_band, compute
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period, Scope
from referrals.retention import pseudonymise_people
from referrals.vocab import Ethnicity, Sex

K = 5
SECTION_D = ("D1", "D2", "D3")

rows_strategy = st.lists(
    st.builds(
        lambda n, sex, ethnicity, band: Kept(n, sex, ethnicity, band),
        st.integers(0, 10**6),
        st.sampled_from(list(Sex)),
        st.sampled_from(list(Ethnicity)),
        st.sampled_from([*AGE_BANDS, None]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(rows=rows_strategy)
def test_coarsening_leaves_no_group_smaller_than_k_and_large_groups_alone(
    rows: list[Kept],
) -> None:
    after = coarsened(rows, K)
    assert [r.patient_id for r in after] == [r.patient_id for r in rows]
    sizes = Counter(r.values for r in rows)
    for before, row in zip(rows, after, strict=True):
        if sizes[before.values] >= K:
            assert row == before
        # Only ever coarsened: each value is kept or becomes unknown.
        for was, now, unknown in zip(before.values, row.values, NOTHING_KEPT, strict=True):
            assert now in (was, unknown)
    if len(rows) >= K:
        assert smallest_group(after) >= K
    else:
        assert {r.values for r in after} <= {NOTHING_KEPT}


def test_coarsening_drops_the_ethnic_group_first() -> None:
    white = [Kept(n, Sex.FEMALE, Ethnicity.WHITE, "45-54") for n in range(5)]
    not_stated = [Kept(n, Sex.FEMALE, Ethnicity.NOT_STATED, "45-54") for n in range(5, 9)]
    rare = Kept(9, Sex.FEMALE, Ethnicity.BLACK, "45-54")
    after = coarsened([*white, *not_stated, rare], K)
    # The five white women are alike already; the other five become alike by ethnic group.
    assert after == [*white, *not_stated, Kept(9, Sex.FEMALE, Ethnicity.NOT_STATED, "45-54")]
    # Alone, the rare one is coarsened to nothing, and the smallest group joins them.
    alone = coarsened([*white, rare], K)
    assert {r.values for r in alone} == {NOTHING_KEPT}
    assert coarsened([*white, rare], 1) == [*white, rare]


# The demo scheme, pseudonymised at once ------------------------------------------------------


def _figures() -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    scopes = [Scope(None), *(Scope(c) for c in db.session.scalars(select(Contract.id)))]
    periods = sorted(set(db.session.scalars(select(KpiReturn.period))))
    found = {}
    for scope in scopes:
        for key in periods:
            found[(scope.key, key)] = [
                (f.code, f.breakdown, f.span, f.value, f.numerator, f.denominator)
                for f in compute(scope, Period.parse(key)).figures
            ]
    return found


def _stored_returns() -> list[dict[str, Any]]:
    return [
        {c.key: getattr(r, c.key) for c in KpiReturn.__table__.columns}
        for r in db.session.scalars(select(KpiReturn).order_by(KpiReturn.id))
    ]


def _kept_by_practice() -> dict[int, Counter[tuple[Any, ...]]]:
    """What each pseudonymised row keeps that could single someone out, counted per practice
    (worked out here from the rows, not by the service's own code)."""
    first = dict(
        db.session.execute(
            select(Referral.patient_id, func.min(Referral.received_on)).group_by(
                Referral.patient_id
            )
        ).all()
    )
    groups: dict[int, Counter[tuple[Any, ...]]] = {}
    for person in db.session.scalars(select(Patient).where(Patient.anonymised_at.is_not(None))):
        born = person.date_of_birth
        band = _age_band(age_on(born, first[person.id])) if born else None
        values = (person.postcode, person.sex, person.ethnicity, band)
        groups.setdefault(person.gp_practice_id, Counter())[values] += 1
    return groups


def test_the_demo_pseudonymised_at_once_has_no_one_standing_out_in_their_practice(
    app: Flask, seeded_demo: None
) -> None:
    people = list(db.session.scalars(select(Patient).order_by(Patient.id)))
    assert len(people) > 400
    before_returns = _stored_returns()
    before = _figures()

    pseudonymise_people(None, people, "Retention check of the whole demo")
    db.session.commit()
    db.session.expire_all()

    groups = _kept_by_practice()
    assert sum(sum(c.values()) for c in groups.values()) == len(people)
    for practice_id, sizes in groups.items():
        assert min(sizes.values()) >= K, (practice_id, sizes.most_common()[-3:])
        assert {values[0] for values in sizes} == {None}  # no postcode kept
    # Not everything was coarsened away: common combinations keep their detail.
    kept_detail = [v for sizes in groups.values() for v in sizes if v[1:] != NOTHING_KEPT]
    assert kept_detail

    # Every return already made is as it was; made again, every figure but section D's cells
    # is too, and section D still counts everyone.
    assert _stored_returns() == before_returns
    after = _figures()
    for key, figures in after.items():
        assert [f for f in figures if f[0] not in SECTION_D] == [
            f for f in before[key] if f[0] not in SECTION_D
        ], key
        for code in SECTION_D:
            for span in {f[2] for f in figures}:
                total = sum(int(f[3] or 0) for f in figures if f[0] == code and f[2] == span)
                was = sum(int(f[3] or 0) for f in before[key] if f[0] == code and f[2] == span)
                assert total == was, (key, code, span)
