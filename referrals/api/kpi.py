"""KPI returns over the API: list, make (or find), read, and download as CSV or PDF.

Commissioners see the returns of their own organisation's contracts, never the all-activity
return, and only the published figures (the small-number rule applied, kpi-spec.md). Admins
see every return and, beside each figure, the unrounded `raw_value`. A return outside the
caller's scope answers 404, as an unknown id does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from flask import jsonify
from flask.typing import ResponseReturnValue
from flask_login import current_user
from pydantic import Field, ValidationInfo, field_validator

from referrals import clock
from referrals.api import bp
from referrals.audit import record_now
from referrals.auth.models import Role
from referrals.courses.kpi_targets import TARGET_LEVELS
from referrals.courses.models import Contract
from referrals.exports import send_bytes
from referrals.extensions import db
from referrals.openapi import (
    Answer,
    Page,
    PageQuery,
    Query,
    dump,
    format_schema,
    operation,
    paginate,
    scoped,
)
from referrals.problems import validation_problem
from referrals.reports.csv_export import ADMIN_COLUMNS, COLUMNS, FIGURE_FIELDS, FLAG_COLUMNS
from referrals.reports.exporting import export_return, scope_label
from referrals.reports.labels import changed_since_made, figure_target, span_of
from referrals.reports.models import KpiReturn
from referrals.reports.periods import InvalidPeriod, Period, check_reportable
from referrals.reports.scope import get_return_or_404, scoped_returns
from referrals.reports.services import make_return
from referrals.security import allow, refuse_access
from referrals.typed import Body, Flag, Id, either, refuse, rule

KPI_READERS = (Role.ADMIN, Role.COMMISSIONER)
ALL_SCOPE = "all"
_MONTH = r"^\d{4}-\d{2}$"

# Answers ----------------------------------------------------------------------------------


def _month(form: str) -> Any:
    return Field(json_schema_extra={"pattern": _MONTH, **format_schema(form)})


class KpiReturnSummary(Answer):
    """A return without its figures."""

    id: int
    scope: Literal["contract", "all"] = Field(
        description="A contract's courses, or all activity (admins only)"
    )
    contract_id: int | None = Field(description="null for all activity")
    scope_name: str = Field(
        description="The contract's name, or `All activity` (the CSV's scope column)"
    )
    period: Annotated[str, _month("month")] = Field(description="The calendar month, YYYY-MM")
    version: int = Field(description="2, 3… after regeneration")
    spec_version: str = Field(description="The KPI specification version used")
    generated_at: datetime
    superseded: bool = Field(description="True when a later version replaced this one")
    provisional: bool = Field(
        description="True when the return was made before its month's registers closed: its "
        "figures may still change, and the final return replaces it once they close"
    )
    changed_since_made: bool = Field(
        default=False,
        description="Admins only: true when a register of the month was saved after this "
        "(current) return was made, so its figures do not include that change; regenerate it",
    )

    source = KpiReturn

    @classmethod
    def read(cls, made: Any, context: dict[str, Any]) -> Any:
        """As the caller may see it: admins are shown more."""
        raw = _raw(context)
        shown = {name: getattr(made, name) for name in _STORED}
        shown |= {
            "scope": ALL_SCOPE if made.contract_id is None else "contract",
            "scope_name": scope_label(made),
            "generated_at": made.generated_at.replace(tzinfo=made.generated_at.tzinfo or UTC),
            "superseded": not made.is_current,
        }
        if raw:
            shown["changed_since_made"] = changed_since_made(made)
        if "figures" in cls.model_fields:
            shown |= {"generated_by": _generated_by(made), "figures": made.figures or []}
        return shown


_STORED = ("id", "contract_id", "period", "version", "spec_version", "provisional")


def _raw(context: dict[str, Any]) -> bool:
    """Whether the caller is shown the unrounded figures: admins only."""
    return getattr(context.get("viewer"), "role", None) == Role.ADMIN


def _generated_by(made: KpiReturn) -> str | None:
    if made.generated_by is not None:
        return made.generated_by.name
    if made.generated_by_job:
        return "cli" if made.generated_by_job == "cli" else "job"
    return None


Level = int | float | None


class KpiFigure(Answer):
    """One KPI cell. `value` is what commissioners see: a number, `*` (suppressed by the
    small-number rule) or empty. `raw_value`, the unrounded figure, is given to admins only."""

    code: str = Field(examples=["B1"])
    name: str
    span: Literal["month", "year_to_date", "contract_to_date"] = Field(
        description="What the figure is computed over, each span afresh"
    )
    breakdown: str = Field(description='Empty for the headline figure, else "dimension=value"')
    value: str
    suppressed: bool
    target_minimum: Level
    target_expected: Level
    target_stretch: Level
    target_rating: Literal["red", "amber", "green", "stretch met"] | None = Field(
        description="Made from the true figure, never the published one"
    )
    raw_value: str = Field(default="", description="Admins only")

    source = dict

    @classmethod
    def read(cls, figure: Any, context: dict[str, Any]) -> Any:
        """A stored figure as the caller may see it: `raw_value` for admins only."""
        shown = {key: figure.get(key) for key in FIGURE_FIELDS}
        target = figure_target(figure, None) or {}
        shown |= {f"target_{level}": target.get(level) for level in TARGET_LEVELS}
        shown |= {"suppressed": bool(shown["suppressed"]), "span": span_of(figure)}
        if _raw(context):
            shown["raw_value"] = figure.get("raw_value")
        return shown


class KpiReturnOut(KpiReturnSummary):
    """One version of a monthly return, its figures as they were when made."""

    generated_by: str | None = Field(
        description="`job` (the scheduler), `cli` (the kpi command) or the name of the person "
        "who asked for it; null when that account no longer exists"
    )
    figures: list[KpiFigure]


# Requests -------------------------------------------------------------------------------


def _real_month(text: str) -> str:
    return Period.parse(text).key


class ReturnsQuery(PageQuery):
    contract_id: Id | None = Field(default=None, description="Only this contract's returns")
    period: Annotated[str, rule(_real_month, InvalidPeriod), _month("month")] | None = Field(
        default=None, description="Only this month, YYYY-MM"
    )
    include_superseded: Flag = Field(
        default=False, description="Also list versions replaced by a regeneration"
    )


class RawQuery(Query):
    raw: Flag = Field(
        default=False, description="Admins only: add a raw_value column with the unrounded figures"
    )


ONE_SCOPE = 'Give a contract_id, or scope "all" for all activity'


class ReturnRequest(Body):
    """Give either `contract_id` or `scope: all`, and a finished month."""

    contract_id: Id | None = None
    scope: Annotated[
        Literal["all"] | None,
        either("contract_id", 'Give contract_id or scope "all", not both', ONE_SCOPE),
    ] = Field(default=None, validate_default=True, description="All activity (admins only)")
    period: Annotated[str, _month("past-month")]
    required = {"period": "Give the period as a year and month, like 2026-03"}

    @field_validator("period")
    @classmethod
    def _finished(cls, text: str, info: ValidationInfo) -> str:
        try:
            check_reportable(Period.parse(text), (info.context or {})["today"])
        except InvalidPeriod as refused:
            raise refuse(str(refused)) from refused
        return text


# Endpoints ------------------------------------------------------------------------------


@bp.get("/kpi/returns")
@allow(*KPI_READERS)
@operation("kpi", answer=Page[KpiReturnSummary])
def list_kpi_returns(query: ReturnsQuery) -> Any:
    """List KPI returns, newest period first, without figures

    Who may call it: admin (all), commissioner (their organisation's contracts; never all
    activity)."""
    clauses: list[Any] = [] if query.include_superseded else [KpiReturn.superseded_at.is_(None)]
    if query.contract_id is not None:
        clauses.append(KpiReturn.contract_id == query.contract_id)
    if query.period is not None:
        clauses.append(KpiReturn.period == query.period)
    return paginate(scoped_returns(current_user).where(*clauses).order_by(*_NEWEST_FIRST), query)


_NEWEST_FIRST = (
    KpiReturn.period.desc(),
    KpiReturn.scope_key,
    KpiReturn.version.desc(),
    KpiReturn.id.desc(),
)


FOUND = {200: "The return already made for this scope and month"}


@bp.post("/kpi/returns")
@allow(Role.ADMIN)
@operation("kpi", answer=KpiReturnOut, others=FOUND, created="api.show_kpi_return")
def make_kpi_return(body: ReturnRequest) -> Any:
    """Make a KPI return, or find the one already made

    Who may call it: admin."""
    if body.contract_id is not None and db.session.get(Contract, body.contract_id) is None:
        raise validation_problem({"contract_id": ["There is no contract with this id"]})
    period = Period.parse(body.period)
    made = make_return(body.contract_id, period, today=clock.today(), actor=current_user)
    if not made.created:
        return jsonify(dump(KpiReturnOut, made.kpi_return, viewer=current_user))
    return made.kpi_return


RETURN = scoped(get_return_or_404)
CSV_DESCRIPTION = (
    f"One row per KPI, span and breakdown cell: {', '.join(COLUMNS)}, then "
    f"{', '.join(FLAG_COLUMNS)} (and, when an admin asks for raw figures, "
    f"{' and '.join(ADMIN_COLUMNS)}). UTF-8 with a BOM; cells a spreadsheet would run as "
    "formulas are neutralised."
)
PDF_DESCRIPTION = (
    "The return's tables with targets rated, and a 12-month trend per headline KPI; published "
    "(small-number protected) figures only"
)


@bp.get("/kpi/returns/<int:return_id>")
@allow(*KPI_READERS)
@operation("kpi", answer=KpiReturnOut, load=RETURN)
def show_kpi_return(kpi_return: KpiReturn) -> KpiReturn:
    """One KPI return with its figures

    Who may call it: admin (all), commissioner (their organisation's contracts); raw_value for
    admins only."""
    return kpi_return


@bp.get("/kpi/returns/<int:return_id>.csv")
@allow(*KPI_READERS)
@operation("kpi", load=RETURN, files={"text/csv": CSV_DESCRIPTION})
def kpi_return_csv(kpi_return: KpiReturn, query: RawQuery) -> ResponseReturnValue:
    """A KPI return as CSV

    Who may call it: admin (all), commissioner (their organisation's contracts); raw=true for
    admins only."""
    if query.raw and current_user.role != Role.ADMIN:
        refuse_access("raw KPI figures")
    return _export(kpi_return, "csv", raw=query.raw)


@bp.get("/kpi/returns/<int:return_id>.pdf")
@allow(*KPI_READERS)
@operation("kpi", load=RETURN, files={"application/pdf": PDF_DESCRIPTION})
def kpi_return_pdf(kpi_return: KpiReturn) -> ResponseReturnValue:
    """A KPI return as PDF

    Who may call it: admin (all), commissioner (their organisation's contracts)."""
    return _export(kpi_return, "pdf", raw=False)


def _export(kpi_return: KpiReturn, fmt: str, *, raw: bool) -> ResponseReturnValue:
    content, filename, mimetype = export_return(kpi_return, fmt, raw=raw)
    record_now(
        current_user,
        "kpi_return.exported",
        kpi_return,
        format=fmt,
        raw=raw,
        period=kpi_return.period,
        scope=kpi_return.scope_key,
        via="api",
    )
    return send_bytes(content, filename, mimetype)
