"""The demo's returns under KPI specification v2: pooled outcomes a commissioner can see."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from referrals.courses.kpi_targets import check_targets
from referrals.courses.models import Contract
from referrals.extensions import db
from referrals.reports.models import KpiReturn


def _cell(kpi_return: KpiReturn, code: str, span: str) -> dict[str, str]:
    return next(
        f
        for f in kpi_return.figures
        if f["code"] == code and not f["breakdown"] and f["span"] == span
    )


def test_each_commissioner_sees_year_to_date_outcomes(seeded_demo: None) -> None:
    for contract in db.session.scalars(select(Contract)):
        latest = db.session.scalars(
            select(KpiReturn)
            .where(KpiReturn.contract_id == contract.id, KpiReturn.superseded_at.is_(None))
            .order_by(KpiReturn.period.desc())
        ).first()
        assert latest is not None and latest.spec_version == "2"
        for code in ("C4", "C5"):
            cell = _cell(latest, code, "year_to_date")
            assert cell["value"] not in ("*", ""), (contract.name, code, cell)
            Decimal(cell["value"])


def test_the_demo_targets_pass_the_targets_rule(seeded_demo: None) -> None:
    for contract in db.session.scalars(select(Contract)):
        assert contract.targets and check_targets(contract.targets) == contract.targets
