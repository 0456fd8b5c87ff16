"""Making, finding and regenerating KPI returns.

A return is made once per (scope, period): the unique key on (scope, period, version) is the
claim, and on PostgreSQL a transaction-level advisory lock also queues rival makers, so any
number of scheduler processes or hosts still produce one return.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from referrals.audit import record
from referrals.courses.models import Contract
from referrals.db import utcnow
from referrals.extensions import db
from referrals.reports.kpi import SPEC_VERSION, compute, publish, suppression_log
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period, Scope, check_reportable


class ReturnRefused(ValueError):
    """A request for a return that cannot be met; `field` names the input at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Made:
    kpi_return: KpiReturn
    created: bool


def contracts_active_in(period: Period) -> list[Contract]:
    return list(
        db.session.scalars(
            select(Contract)
            .where(Contract.start_date <= period.end, Contract.end_date >= period.start)
            .order_by(Contract.id)
        )
    )


def current_return(scope: Scope, period: Period) -> KpiReturn | None:
    return db.session.scalar(
        select(KpiReturn).where(
            KpiReturn.scope_key == scope.key,
            KpiReturn.period == period.key,
            KpiReturn.superseded_at.is_(None),
        )
    )


def _advisory_lock(scope: Scope, period: Period) -> None:
    """On PostgreSQL, queue makers of the same return until this transaction ends."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"kpi-return:{scope.key}:{period.key}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _scope_for(contract_id: int | None) -> tuple[Scope, Contract | None]:
    if contract_id is None:
        return Scope(None), None
    contract = db.session.get(Contract, contract_id)
    if contract is None:
        raise ReturnRefused("There is no contract with this id", "contract_id")
    return Scope(contract.id), contract


def _build(
    scope: Scope,
    contract: Contract | None,
    period: Period,
    *,
    version: int,
    actor: Any,
    job: str | None,
    reason: str,
) -> KpiReturn:
    targets = dict(contract.targets or {}) if contract is not None else {}
    contract_start = contract.start_date if contract is not None else None
    published = publish(compute(scope, period, contract_start), targets)
    return KpiReturn(
        scope_key=scope.key,
        contract_id=contract.id if contract else None,
        period=period.key,
        version=version,
        spec_version=SPEC_VERSION,
        figures=[f.as_dict() for f in published],
        suppression_log=suppression_log(published),
        targets=targets,
        generated_at=utcnow(),
        generated_by_id=getattr(actor, "id", None),
        generated_by_job=job,
        reason=reason,
    )


def make_return(
    contract_id: int | None,
    period: Period,
    *,
    today: date,
    actor: Any = None,
    job: str | None = None,
) -> Made:
    """The return for (scope, period), made now if it does not exist yet. Commits."""
    check_reportable(period, today)
    scope, contract = _scope_for(contract_id)
    if contract is not None and not (
        contract.start_date <= period.end and contract.end_date >= period.start
    ):
        raise ReturnRefused(f"{contract.name} was not active in {period.label}", "period")
    _advisory_lock(scope, period)
    existing = current_return(scope, period)
    if existing is not None:
        return Made(existing, created=False)
    kpi_return = _build(scope, contract, period, version=1, actor=actor, job=job, reason="")
    db.session.add(kpi_return)
    try:
        db.session.flush()
    except IntegrityError:
        # Another process made it between our check and our insert: theirs stands.
        db.session.rollback()
        made = current_return(scope, period)
        assert made is not None
        return Made(made, created=False)
    record(actor, "kpi_return.generated", kpi_return, period=period.key, scope=scope.key, job=job)
    db.session.commit()
    return Made(kpi_return, created=True)


def regenerate_return(
    actor: Any, contract_id: int | None, period: Period, reason: str, *, today: date
) -> KpiReturn:
    """A new version from today's records; the old one is kept, marked superseded. Commits."""
    if not reason.strip():
        raise ReturnRefused("Give a reason for regenerating the return", "reason")
    check_reportable(period, today)
    scope, contract = _scope_for(contract_id)
    _advisory_lock(scope, period)
    latest = db.session.scalar(
        select(func.max(KpiReturn.version)).where(
            KpiReturn.scope_key == scope.key, KpiReturn.period == period.key
        )
    )
    if latest is None:
        raise ReturnRefused(f"There is no return for {period.label} to regenerate", "period")
    previous = current_return(scope, period)
    kpi_return = _build(
        scope, contract, period, version=latest + 1, actor=actor, job=None, reason=reason.strip()
    )
    if previous is not None:
        previous.superseded_at = utcnow()
    db.session.add(kpi_return)
    db.session.flush()
    record(
        actor,
        "kpi_return.regenerated",
        kpi_return,
        period=period.key,
        scope=scope.key,
        reason=reason.strip(),
        replaces=previous.id if previous else None,
    )
    db.session.commit()
    return kpi_return


def missing_returns(today: date) -> list[tuple[int, Period]]:
    """Every (contract, finished month) since each contract started that has no return."""
    last_finished = Period.containing(today).previous()
    made = {
        (contract_id, period)
        for contract_id, period in db.session.execute(
            select(KpiReturn.contract_id, KpiReturn.period).where(
                KpiReturn.contract_id.is_not(None)
            )
        ).all()
    }
    wanted = []
    for contract in db.session.scalars(select(Contract).order_by(Contract.id)):
        period = Period.containing(contract.start_date)
        end = min(Period.containing(contract.end_date), last_finished)
        while period <= end:
            if (contract.id, period.key) not in made:
                wanted.append((contract.id, period))
            period = period.next()
    return wanted


def returns_for_contract(contract_id: int, *, include_superseded: bool = False) -> list[KpiReturn]:
    query = select(KpiReturn).where(KpiReturn.contract_id == contract_id)
    if not include_superseded:
        query = query.where(KpiReturn.superseded_at.is_(None))
    return list(
        db.session.scalars(query.order_by(KpiReturn.period.desc(), KpiReturn.version.desc()))
    )
