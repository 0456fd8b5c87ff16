"""Section A's A2 and A3 against the engine's previous queries, month by month.

A2 and A3 judge each referral from its lifecycle history as it stood at the month's end. The
engine used to look up each referral's last change by then with a correlated subquery per
referral; on PostgreSQL it now reads every referral's last change in one ordered pass over the
history's index (`_latest_steps`). Those previous queries are kept here, word for word in
effect, and every month of several generated schemes (with reopened referrals, changes on the
same day and changes recorded after later-dated ones) must give the same A2, its close
reasons, and A3. Runs on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import and_, exists, func, select

from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    CourseSession,
    Enrolment,
    SessionStatus,
)
from referrals.extensions import db
from referrals.intake.lifecycle import CLOSING_STATUSES, OPEN_STATUSES, Status
from referrals.intake.models import Referral, ReferralTransition
from referrals.reports.kpi import CLOSE_REASONS, scheme_figures
from referrals.reports.periods import FIRST, Period, periods_between
from referrals.seeding.demo import seed_demo
from referrals.seeding.scale import seed_scale
from tests.test_kpi_engine import S, d, new_builder
from tests.test_kpi_reference import build


def _by_lookup(period: Period) -> dict[str, int]:
    """A2 (with its close reasons) and A3 as the engine computed them before: each
    referral's status at the month's end looked up by a correlated subquery."""

    def latest_step(column: Any) -> Any:
        return (
            select(column)
            .where(
                ReferralTransition.referral_id == Referral.id,
                ReferralTransition.effective_on <= period.end,
            )
            .order_by(ReferralTransition.effective_on.desc(), ReferralTransition.id.desc())
            .limit(1)
            .correlate(Referral)
            .scalar_subquery()
        )

    status_at_end = latest_step(ReferralTransition.to_status)
    changed_on = latest_step(ReferralTransition.effective_on)
    attended_by_end = exists().where(
        Enrolment.referral_id == Referral.id,
        Attendance.enrolment_id == Enrolment.id,
        Attendance.session_id == CourseSession.id,
        and_(
            Attendance.status == AttendanceStatus.ATTENDED,
            CourseSession.status == SessionStatus.DELIVERED,
        ),
        CourseSession.date <= period.end,
    )
    changed_in_period = select(ReferralTransition.referral_id).where(
        ReferralTransition.effective_on >= period.start,
        ReferralTransition.effective_on <= period.end,
    )
    figures = dict.fromkeys([f"A2|close_reason={r}" for r in CLOSE_REASONS], 0)
    for status, count in db.session.execute(
        select(status_at_end, func.count())
        .select_from(Referral)
        .where(
            Referral.id.in_(changed_in_period),
            Referral.received_on <= period.end,
            status_at_end.in_(CLOSING_STATUSES),
            changed_on >= period.start,
            ~attended_by_end,
        )
        .group_by(status_at_end)
    ):
        closed = Status(status)
        reason = "other" if closed is Status.WITHDRAWN else closed.value
        figures[f"A2|close_reason={reason}"] += count
    figures["A2|"] = sum(figures.values())
    figures["A3|"] = (
        db.session.scalar(
            select(func.count())
            .select_from(Referral)
            .where(
                Referral.received_on <= period.end,
                status_at_end.in_(OPEN_STATUSES),
                ~attended_by_end,
            )
        )
        or 0
    )
    return figures


def _engine(period: Period) -> dict[str, int]:
    return {
        f"{f.code}|{f.breakdown}": int(f.value or 0)
        for f in scheme_figures(period)
        if f.code in ("A2", "A3")
    }


def _every_month_agrees(last: Period) -> int:
    first = db.session.scalar(select(func.min(ReferralTransition.effective_on)))
    assert first is not None
    months = periods_between(max(Period.containing(first), FIRST), last)
    busy = 0
    for period in months:
        before = _by_lookup(period)
        assert _engine(period) == before, period.key
        busy += bool(before["A2|"] and before["A3|"])
    return busy


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_generated_scheme_gives_the_same_a2_and_a3_every_month(app: Any, seed: int) -> None:
    build(seed)
    assert _every_month_agrees(Period(2026, 9)) >= 3


def test_the_scale_scheme_gives_the_same_a2_and_a3_every_month(app: Any) -> None:
    seed_scale(300, 2_500, seed=7, today=date(2026, 3, 11))
    db.session.commit()
    assert _every_month_agrees(Period(2026, 2)) >= 12


def test_the_demo_gives_the_same_a2_and_a3_every_month(app: Any) -> None:
    seed_demo(today=date(2026, 3, 16))
    db.session.commit()
    assert _every_month_agrees(Period(2026, 2)) >= 6


def test_changes_on_one_day_and_changes_recorded_out_of_date_order(app: Any) -> None:
    """The last change by the month's end is the latest by date, then the one recorded last,
    whatever order the changes were recorded in."""
    b, _, _ = new_builder()
    # Closed and reopened on the same day: open (the reopening was recorded last).
    b.referral("same-day-reopened", d(3, 2), [(S.DECLINED, d(3, 10)), (S.CONTACTING, d(3, 10))])
    # Reopened and closed on the same day: closed in March without starting (A2).
    b.referral("same-day-closed", d(3, 2), [(S.CONTACTING, d(3, 10)), (S.DECLINED, d(3, 10))])
    # A closing dated 20 March recorded after a change dated 5 April: closed at March's end.
    b.referral("backdated-close", d(3, 2), [(S.CONTACTING, d(4, 5)), (S.NOT_SUITABLE, d(3, 20))])
    # A reopening dated 25 March recorded after a closing dated 28 March: closed in March.
    b.referral(
        "backdated-reopen", d(3, 2), [(S.UNABLE_TO_CONTACT, d(3, 28)), (S.CONTACTING, d(3, 25))]
    )
    # Closed in February, reopened in April: neither closed in March nor open at its end.
    b.referral("reopened-later", d(2, 2), [(S.WITHDRAWN, d(2, 20)), (S.CONTACTING, d(4, 2))])
    db.session.commit()
    march = Period(2026, 3)
    figures = _engine(march)
    assert figures == _by_lookup(march)
    assert figures["A3|"] == 1  # same-day-reopened
    assert figures["A2|"] == 3
    assert figures["A2|close_reason=declined"] == 1
    assert figures["A2|close_reason=not_suitable"] == 1
    assert figures["A2|close_reason=unable_to_contact"] == 1
    april = Period(2026, 4)
    assert _engine(april) == _by_lookup(april)
    assert _engine(Period(2026, 2)) == _by_lookup(Period(2026, 2))
