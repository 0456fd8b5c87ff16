"""The demo scheme's referrals: realistic, complete, deterministic, through the services."""

from __future__ import annotations

from collections import Counter
from datetime import date
from itertools import pairwise

import nhs_number
import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from referrals.auth.models import Organisation, OrganisationKind
from referrals.extensions import db
from referrals.intake.lifecycle import OPEN_STATUSES, TRANSITIONS, Status
from referrals.intake.models import Patient, Referral
from referrals.intake.queries import is_overdue
from referrals.intake.validation import age_on, clean_phone, clean_postcode
from referrals.seeding.demo import GP_PRACTICES, seed_demo
from referrals.seeding.demo_courses import plan_demo_referrals, plan_demo_scheme
from referrals.seeding.demo_referrals import (
    HISTORY_DAYS,
    LONDON,
    TOTAL_REFERRALS,
    PlannedEnrol,
    PlannedMove,
)
from referrals.vocab import Pathway

TODAY = date(2026, 3, 16)


def test_the_plan_is_deterministic_for_a_seed():
    assert plan_demo_referrals(today=TODAY) == plan_demo_referrals(today=TODAY)
    other = plan_demo_referrals(today=TODAY, seed=7)
    assert [r.person.nhs_number for r in other] != [
        r.person.nhs_number for r in plan_demo_referrals(today=TODAY)
    ]


@pytest.mark.parametrize(
    ("today", "seed"), [(TODAY, 2026), (date(2025, 8, 26), 2026), (date(2026, 1, 5), 11)]
)
def test_the_plan_covers_every_status_pathway_and_practice(today, seed):
    plan = plan_demo_referrals(today=today, seed=seed)
    assert len(plan) == TOTAL_REFERRALS
    assert {r.status for r in plan} == set(Status)
    assert {r.pathway for r in plan} == set(Pathway)
    assert {r.person.practice for r in plan} == {name for name, _ in GP_PRACTICES}
    for r in plan:
        assert (today - r.received_on).days <= HISTORY_DAYS
        moments = [r.received_at, *(s.at for s in r.steps)]
        assert moments == sorted(moments)
        assert all(m.astimezone(LONDON).date() < today for m in moments)


def test_the_plan_reads_like_a_real_caseload():
    scheme = plan_demo_scheme(today=TODAY)
    plan = scheme.referrals
    titles = {run.title for run in scheme.runs}
    runs = {run.key for run in scheme.runs}
    recent = [r for r in plan if (TODAY - r.received_on).days <= 21]
    older = [r for r in plan if (TODAY - r.received_on).days > 120]
    assert sum(r.status.is_open for r in recent) / len(recent) > 0.7
    assert sum(not r.status.is_open for r in older) / len(older) > 0.9

    for r in plan:
        person = r.person
        low, high = {
            Pathway.DEMENTIA: (62, 95),
            Pathway.YOUNG_PEOPLES_MENTAL_HEALTH: (16, 24),
        }.get(r.pathway, (16, 100))
        assert low <= age_on(person.date_of_birth, r.received_on) <= high
        assert clean_postcode(person.postcode) == person.postcode
        assert person.postcode.split()[0].startswith("GL")
        assert person.phone is None or clean_phone(person.phone) == person.phone
        assert person.phone is None or person.phone[5:8] in ("900", "960")
        assert person.email is None or person.email.endswith("@example.org")
        for step in r.steps:
            # Moves made by the course services name the course run.
            if isinstance(step, PlannedMove) and (step.system or step.effect):
                assert step.course in titles and step.effect
            if isinstance(step, PlannedEnrol):
                assert step.run in runs

    ethnicity = Counter(r.person.ethnicity for r in plan)
    # Five groups at least: the rarest ("other", about 1 in 100) may by chance not be drawn.
    assert len(ethnicity) >= 5 and ethnicity.most_common(1)[0][0] == "white"
    people = Counter(r.person.nhs_number for r in plan)
    with_two = [n for n, count in people.items() if count == 2]
    assert 0.03 <= len(with_two) / len(people) <= 0.08 and max(people.values()) == 2
    assert sum(bool(r.new_episode_reason) for r in plan) == 2


def _all_referrals() -> list[Referral]:
    return list(
        db.session.scalars(
            select(Referral)
            .options(
                selectinload(Referral.transitions),
                selectinload(Referral.contact_attempts),
                selectinload(Referral.patient),
                selectinload(Referral.gp_practice),
                selectinload(Referral.assigned_to),
            )
            .order_by(Referral.id)
        )
    )


def test_seeding_loads_a_year_of_referrals_through_the_services(app):
    seed_demo(today=TODAY)  # how long it takes is for bench/, not a test
    db.session.commit()

    referrals = _all_referrals()
    assert len(referrals) == TOTAL_REFERRALS
    assert {r.status for r in referrals} == set(Status)
    assert {r.pathway for r in referrals} == set(Pathway)
    practices = db.session.scalars(
        select(Organisation.id).where(Organisation.kind == OrganisationKind.GP_PRACTICE)
    )
    assert {r.gp_practice_id for r in referrals} == set(practices)

    for r in referrals:
        chain = [(t.from_status, t.to_status) for t in r.transitions]
        assert chain[0] == (None, Status.RECEIVED)
        for (_, before), (after_from, after_to) in pairwise(chain):
            assert after_from is before and (after_from, after_to) in TRANSITIONS
        assert chain[-1][1] is r.status
        moments = [t.at for t in r.transitions]
        assert moments == sorted(moments)
        assert all(m.astimezone(LONDON).date() < TODAY for m in moments)
        assert r.transitions[0].effective_on == r.received_on
        if r.status is Status.UNABLE_TO_CONTACT:
            assert len(r.contact_attempts) >= 3
        if r.status.is_open:
            assert r.closed_on is None
        else:
            assert r.closed_on is not None and r.closed_on < TODAY

    patients = db.session.scalars(select(Patient)).all()
    numbers = [p.nhs_number for p in patients]
    assert len(set(numbers)) == len(numbers)
    assert all(n and n.startswith("999") and nhs_number.is_valid(n) for n in numbers)

    open_ones = [r for r in referrals if r.status in OPEN_STATUSES]
    assert sum(is_overdue(r, TODAY) for r in open_ones) >= 3
    assert sum(r.status is Status.RECEIVED and r.assigned_to is None for r in open_ones) >= 3
    assert {r.assigned_to.email for r in referrals if r.assigned_to} == {
        "linkworker@demo.test",
        "linkworker2@demo.test",
    }
    assert {r.referred_by.email for r in referrals if r.referred_by} >= {
        "gp@demo.test",
        "gp2@demo.test",
    }

    # The database holds exactly what the plan says, so the same seed gives the same scheme.
    plan = sorted(plan_demo_referrals(today=TODAY), key=lambda p: p.received_at)
    referrals.sort(key=lambda r: r.transitions[0].at)
    assert [(r.patient.nhs_number, r.patient.full_name, r.status) for r in referrals] == [
        (p.person.nhs_number, f"{p.person.given_name} {p.person.family_name}", p.status)
        for p in plan
    ]
