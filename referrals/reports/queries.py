"""Queries the returns pages and the commissioner's home page share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from referrals.courses.models import Contract
from referrals.extensions import db
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period
from referrals.reports.scope import contracts_for, in_bounds


@dataclass(frozen=True)
class ContractSummary:
    contract: Contract
    latest_period: Period | None


def contract_summaries(user: Any) -> list[ContractSummary]:
    """The user's contracts with the month of their latest return (two queries)."""
    contracts = list(db.session.scalars(contracts_for(user)))
    if not contracts:
        return []
    latest = dict(
        db.session.execute(
            select(KpiReturn.contract_id, func.max(KpiReturn.period))
            .where(
                KpiReturn.contract_id.in_([c.id for c in contracts]),
                KpiReturn.superseded_at.is_(None),
                in_bounds(),
            )
            .group_by(KpiReturn.contract_id)
        ).all()
    )
    return [
        ContractSummary(c, Period.parse(latest[c.id]) if c.id in latest else None)
        for c in contracts
    ]
