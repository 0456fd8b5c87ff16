"""Making, finding and regenerating KPI returns.

A return is made once per (scope, period): the unique key on (scope, period, version) is the
claim, and on PostgreSQL a transaction-level advisory lock also queues rival makers, so any
number of scheduler processes or hosts still produce one return.

A month's returns are due once its registers close (`registers_close_on`); one made before
then is provisional, and the scheduled job replaces it with the final return when they close.
A register saved after its month's return was made marks that return changed since it was made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from referrals.audit import record
from referrals.courses.models import Contract, Course, Enrolment
from referrals.courses.register_rules import REGISTER_EDIT_DAYS
from referrals.db import utcnow, without_write_lock
from referrals.extensions import db
from referrals.free_text import IDENTIFIERS_IN_REASON, names_people_in
from referrals.intake.models import Patient, Referral
from referrals.notifications.services import notify
from referrals.reports.kpi import (
    SPEC_VERSION,
    Figure,
    compute,
    publish,
    scheme_figures,
    suppression_log,
)
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period, Scope, check_reportable, months_to_report


class ReturnRefused(ValueError):
    """A request for a return that cannot be met; `field` names the input at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Made:
    kpi_return: KpiReturn
    created: bool


FINAL_REASON = "Registers closed: the final return replaces the provisional one"
REGENERATED_KIND = "kpi_return_regenerated"


def registers_close_on(period: Period) -> date:
    """The day a month's returns are due: the day after the last day on which an artist may
    still change a register for a session in the month (v2, "Returns are records")."""
    return period.end + timedelta(days=REGISTER_EDIT_DAYS + 1)


def latest_closed_period(today: date) -> Period:
    """The latest month whose registers have closed by `today` (last month from the 8th)."""
    period = Period.containing(today).previous()
    while registers_close_on(period) > today:
        period = period.previous()
    return period


def is_provisional(period: Period, today: date) -> bool:
    return today < registers_close_on(period)


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


SchemeFigures = dict[Period, list[Figure]]
"""Section A (scheme-wide) of each month, computed once and shared by every return of a run."""


@dataclass(frozen=True)
class _Computed:
    """A return's published figures, computed before anything is written."""

    figures: list[dict[str, Any]]
    suppression_log: list[dict[str, Any]]
    targets: dict[str, Any]


def _compute(
    scope: Scope, contract: Contract | None, period: Period, scheme: SchemeFigures | None
) -> _Computed:
    """Every figure of the return, computed while holding no write lock.

    On SQLite a job, a command or a form post takes the database's one write lock with its
    first statement; the computation takes up to seconds at scale, so it runs in a read
    transaction of its own, and the return is written afterwards in a short one. Contract
    objects are expired on the way out (load them again to use them).
    """
    targets = dict(contract.targets or {}) if contract is not None else {}
    contract_start = contract.start_date if contract is not None else None

    def figures() -> _Computed:
        section_a = None
        if scheme is not None:
            if period not in scheme:
                scheme[period] = scheme_figures(period)
            section_a = scheme[period]
        published = publish(compute(scope, period, contract_start, section_a), targets)
        return _Computed([f.as_dict() for f in published], suppression_log(published), targets)

    if db.session.new or db.session.dirty or db.session.deleted:
        # The caller's unsaved changes belong to its own transaction: compute within it.
        return figures()
    with without_write_lock(db.session):
        return figures()


def _new_return(
    scope: Scope,
    contract_id: int | None,
    period: Period,
    computed: _Computed,
    *,
    version: int,
    actor: Any,
    job: str | None,
    reason: str,
    today: date,
) -> KpiReturn:
    return KpiReturn(
        scope_key=scope.key,
        contract_id=contract_id,
        period=period.key,
        version=version,
        spec_version=SPEC_VERSION,
        figures=computed.figures,
        suppression_log=computed.suppression_log,
        targets=computed.targets,
        generated_at=utcnow(),
        generated_by_id=getattr(actor, "id", None),
        generated_by_job=job,
        reason=reason,
        provisional=is_provisional(period, today),
    )


def make_return(
    contract_id: int | None,
    period: Period,
    *,
    today: date,
    actor: Any = None,
    job: str | None = None,
    scheme: SchemeFigures | None = None,
) -> Made:
    """The return for (scope, period), made now if it does not exist yet. Commits.

    Made before the month's registers close, it is provisional. The figures are computed
    holding no write lock, then written in a short transaction; `scheme` shares section A
    between the returns of one run.
    """
    check_reportable(period, today)
    scope, contract = _scope_for(contract_id)
    if contract is not None and not (
        contract.start_date <= period.end and contract.end_date >= period.start
    ):
        raise ReturnRefused(f"{contract.name} was not active in {period.label}", "period")
    existing = current_return(scope, period)
    if existing is not None:
        return Made(existing, created=False)
    computed = _compute(scope, contract, period, scheme)
    _advisory_lock(scope, period)
    existing = current_return(scope, period)
    if existing is not None:  # a rival process made it while this one computed
        db.session.commit()
        return Made(existing, created=False)
    kpi_return = _new_return(
        scope,
        contract_id,
        period,
        computed,
        version=1,
        actor=actor,
        job=job,
        reason="",
        today=today,
    )
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
    actor: Any,
    contract_id: int | None,
    period: Period,
    reason: str,
    *,
    today: date,
    job: str | None = None,
) -> KpiReturn:
    """A new version from today's records; the old one is kept, marked superseded. Commits.

    The contract's commissioner is told in-app. The figures are computed holding no write
    lock, then written in a short transaction.
    """
    if not reason.strip():
        raise ReturnRefused("Give a reason for regenerating the return", "reason")
    check_reportable(period, today)
    scope, contract = _scope_for(contract_id)
    if not (db.session.new or db.session.dirty or db.session.deleted):
        # The checks read the whole scope's names (a scan at scale): like the figures, they
        # hold no write lock.
        with without_write_lock(db.session):
            _refuse_reason_or_period(reason, scope, period)
    else:
        _refuse_reason_or_period(reason, scope, period)
    computed = _compute(scope, contract, period, None)
    _advisory_lock(scope, period)
    return _regenerate(
        actor, scope, contract_id, period, reason.strip(), computed, today=today, job=job
    )


def _refuse_reason_or_period(reason: str, scope: Scope, period: Period) -> None:
    if names_people_in(reason, _people_in(scope)):
        raise ReturnRefused(IDENTIFIERS_IN_REASON, "reason")
    _latest_version(scope, period)  # refuse before computing


def _people_in(scope: Scope) -> Select[Any]:
    """Ids of the people a return for `scope` may count: everyone, or those on its courses."""
    if scope.contract_id is None:
        return select(Patient.id)
    return (
        select(Referral.patient_id)
        .join(Enrolment, Enrolment.referral_id == Referral.id)
        .join(Course, Course.id == Enrolment.course_id)
        .where(Course.contract_id == scope.contract_id)
    )


def _latest_version(scope: Scope, period: Period) -> int:
    latest = db.session.scalar(
        select(func.max(KpiReturn.version)).where(
            KpiReturn.scope_key == scope.key, KpiReturn.period == period.key
        )
    )
    if latest is None:
        raise ReturnRefused(f"There is no return for {period.label} to regenerate", "period")
    return int(latest)


def _regenerate(
    actor: Any,
    scope: Scope,
    contract_id: int | None,
    period: Period,
    reason: str,
    computed: _Computed,
    *,
    today: date,
    job: str | None,
) -> KpiReturn:
    """Write the new version (the caller holds the advisory lock, computed beforehand)."""
    latest = _latest_version(scope, period)
    previous = current_return(scope, period)
    kpi_return = _new_return(
        scope,
        contract_id,
        period,
        computed,
        version=latest + 1,
        actor=actor,
        job=job,
        reason=reason,
        today=today,
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
        reason=reason,
        replaces=previous.id if previous else None,
        job=job,
    )
    contract = db.session.get(Contract, contract_id) if contract_id is not None else None
    if contract is not None:
        # Commissioners see their contracts' returns; the all-activity return is admins' only.
        notify(
            organisation=contract.commissioner,
            text=(
                f"The {period.label} KPI return for {contract.name} has been regenerated "
                f"(version {kpi_return.version}): {reason}"
            ),
            link=f"/returns/{kpi_return.id}",
            kind=REGENERATED_KIND,
        )
    db.session.commit()
    return kpi_return


def finalise_return(
    contract_id: int,
    period: Period,
    *,
    today: date,
    job: str,
    scheme: SchemeFigures | None = None,
) -> bool:
    """Replace a provisional return with the final one once its registers have closed.

    Returns whether this call made it (a rival process, or an earlier run, may have). Commits.
    """
    check_reportable(period, today)
    if is_provisional(period, today):
        return False
    scope, contract = _scope_for(contract_id)
    current = current_return(scope, period)
    if current is None or not current.provisional:
        db.session.rollback()
        return False
    computed = _compute(scope, contract, period, scheme)
    _advisory_lock(scope, period)
    current = current_return(scope, period)
    if current is None or not current.provisional:  # a rival process made it final meanwhile
        db.session.rollback()
        return False
    _regenerate(None, scope, contract_id, period, FINAL_REASON, computed, today=today, job=job)
    return True


def provisional_returns_closed(today: date) -> list[tuple[int, Period]]:
    """Contracts' current returns that are provisional although their registers have closed."""
    last_closed = latest_closed_period(today)
    rows = db.session.execute(
        select(KpiReturn.contract_id, KpiReturn.period)
        .where(
            KpiReturn.contract_id.is_not(None),
            KpiReturn.provisional.is_(True),
            KpiReturn.superseded_at.is_(None),
            KpiReturn.period <= last_closed.key,
        )
        .order_by(KpiReturn.contract_id, KpiReturn.period)
    ).all()
    return [(contract_id, Period.parse(period)) for contract_id, period in rows if contract_id]


def mark_returns_changed(contract_id: int, session_date: date) -> None:
    """A register of this contract's session was saved: mark the current returns of its month
    (the contract's and all activity's) as changed since they were made. Call it on saving."""
    db.session.execute(
        update(KpiReturn)
        .where(
            KpiReturn.period == Period.containing(session_date).key,
            KpiReturn.superseded_at.is_(None),
            KpiReturn.registers_changed_at.is_(None),
            or_(KpiReturn.contract_id == contract_id, KpiReturn.scope_key == Scope.ALL_KEY),
        )
        .values(registers_changed_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def missing_returns(today: date) -> list[tuple[int, Period]]:
    """Every (contract, month whose registers have closed) since each contract started that has
    no return.

    Bounded whatever the stored dates: at most a contract's longest possible term of months
    each, never before the service's first month (`months_to_report`)."""
    last_closed = latest_closed_period(today)
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
        for period in months_to_report(contract.start_date, contract.end_date, today):
            if period <= last_closed and (contract.id, period.key) not in made:
                wanted.append((contract.id, period))
    return wanted


def returns_for_contract(contract_id: int, *, include_superseded: bool = False) -> list[KpiReturn]:
    query = select(KpiReturn).where(KpiReturn.contract_id == contract_id)
    if not include_superseded:
        query = query.where(KpiReturn.superseded_at.is_(None))
    return list(
        db.session.scalars(query.order_by(KpiReturn.period.desc(), KpiReturn.version.desc()))
    )
