"""KPI returns over the API: list, make (or find), read, and download as CSV or PDF.

Commissioners see the returns of their own organisation's contracts, never the all-activity
return, and only the published figures (the small-number rule applied, kpi-spec.md). Admins
see every return and, beside each figure, the unrounded `raw_value`. A return outside the
caller's scope answers 404, as an unknown id does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from flask import abort, jsonify, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import Select, select

from referrals import clock
from referrals.api import bp
from referrals.api.openapi import (
    PROBLEM_RESPONSE,
    Body,
    Flag,
    Id,
    PageQuery,
    Query,
    format_schema,
    json_response,
    operation,
    page_of,
    paginate,
    ref,
    refuse,
    register_schema,
    rule,
)
from referrals.api.problems import KINDS, PROBLEM_BASE, validation_problem
from referrals.audit import record_now
from referrals.auth.models import Role
from referrals.courses.models import Contract
from referrals.exports import send_bytes
from referrals.extensions import db
from referrals.reports.csv_export import FIGURE_FIELDS
from referrals.reports.exporting import export_return, scope_label
from referrals.reports.labels import changed_since_made, figure_target, span_of
from referrals.reports.models import KpiReturn
from referrals.reports.periods import InvalidPeriod, Period, check_reportable
from referrals.reports.scope import return_scope
from referrals.reports.services import make_return
from referrals.security import allow, refuse_access

KPI_READERS = (Role.ADMIN, Role.COMMISSIONER)
ALL_SCOPE = "all"
_MONTH = r"^\d{4}-\d{2}$"
RATINGS = ["red", "amber", "green", "stretch met"]

# Schemas --------------------------------------------------------------------------------

_PERIOD_SCHEMA = {"type": "string", "pattern": _MONTH, **format_schema("month")}
_SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "scope": {
        "type": "string",
        "enum": ["contract", ALL_SCOPE],
        "description": "A contract's courses, or all activity (admins only)",
    },
    "contract_id": {"type": ["integer", "null"], "description": "null for all activity"},
    "scope_name": {
        "type": "string",
        "description": "The contract's name, or `All activity` (the CSV's scope column)",
    },
    "period": {**_PERIOD_SCHEMA, "description": "The calendar month, YYYY-MM"},
    "version": {"type": "integer", "minimum": 1, "description": "2, 3… after regeneration"},
    "spec_version": {"type": "string", "description": "The KPI specification version used"},
    "generated_at": {"type": "string", "format": "date-time"},
    "superseded": {
        "type": "boolean",
        "description": "True when a later version replaced this one",
    },
    "provisional": {
        "type": "boolean",
        "description": (
            "True when the return was made before its month's registers closed: its figures "
            "may still change, and the final return replaces it once they close"
        ),
    },
    "changed_since_made": {
        "type": "boolean",
        "description": (
            "Admins only: true when a register of the month was saved after this (current) "
            "return was made, so its figures do not include that change; regenerate it"
        ),
    },
}
_SUMMARY_REQUIRED = [
    "id",
    "scope",
    "contract_id",
    "scope_name",
    "period",
    "version",
    "spec_version",
    "generated_at",
    "superseded",
    "provisional",
]

register_schema(
    "KpiReturnSummary",
    {
        "type": "object",
        "description": "A return without its figures",
        "required": _SUMMARY_REQUIRED,
        "properties": _SUMMARY_PROPERTIES,
    },
)
register_schema(
    "KpiFigure",
    {
        "type": "object",
        "description": (
            "One KPI cell. `value` is what commissioners see: a number, `*` (suppressed by the "
            "small-number rule) or empty. `raw_value`, the unrounded figure, is given to admins "
            "only."
        ),
        "required": list(FIGURE_FIELDS),
        "properties": {
            "code": {"type": "string", "examples": ["B1"]},
            "name": {"type": "string"},
            "span": {
                "type": "string",
                "enum": ["month", "year_to_date", "contract_to_date"],
                "description": "What the figure is computed over, each span afresh",
            },
            "target_minimum": {"type": ["number", "null"]},
            "target_expected": {"type": ["number", "null"]},
            "target_stretch": {"type": ["number", "null"]},
            "breakdown": {
                "type": "string",
                "description": 'Empty for the headline figure, else "dimension=value"',
            },
            "value": {"type": "string"},
            "suppressed": {"type": "boolean"},
            "target_rating": {
                "type": ["string", "null"],
                "enum": [*RATINGS, None],
                "description": "Made from the true figure, never the published one",
            },
            "raw_value": {"type": "string", "description": "Admins only"},
        },
    },
)
register_schema(
    "KpiReturn",
    {
        "type": "object",
        "description": "One version of a monthly return, its figures as they were when made",
        "required": [*_SUMMARY_REQUIRED, "generated_by", "figures"],
        "properties": {
            **_SUMMARY_PROPERTIES,
            "generated_by": {
                "type": ["string", "null"],
                "description": (
                    "`job` (the scheduler), `cli` (the kpi command) or the name of the person "
                    "who asked for it; null when that account no longer exists"
                ),
            },
            "figures": {"type": "array", "items": ref("KpiFigure")},
        },
    },
)
_INVALID = {**PROBLEM_RESPONSE, "description": "Invalid input, with `errors` by field"}
_INVALID_QUERY = {
    **PROBLEM_RESPONSE,
    "description": f"[{KINDS['invalid-query'][1]}]({PROBLEM_BASE}invalid-query)",
}
_NOT_FOUND = {**PROBLEM_RESPONSE, "description": "No such return, or outside the caller's scope"}
_RETURN_ID = {"description": "The return's id"}
_FILE_ROLES = "admin (all), commissioner (their organisation's contracts)"


def _file_response(mimetype: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {mimetype: {"schema": {"type": "string", "format": "binary"}}},
    }


# Helpers --------------------------------------------------------------------------------


def _is_admin() -> bool:
    return bool(current_user.role == Role.ADMIN)


def scoped_returns() -> Select[KpiReturn]:
    """The returns the caller may see: all for admins, own contracts' for commissioners."""
    return select(KpiReturn).where(return_scope(current_user))


def get_return_or_404(return_id: int) -> KpiReturn:
    kpi_return = db.session.scalar(scoped_returns().where(KpiReturn.id == return_id))
    if kpi_return is None:
        abort(404)
    return kpi_return


def _instant(value: datetime) -> str:
    if value.tzinfo is None:  # stored as UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def return_summary(kpi_return: KpiReturn, *, admin: bool = False) -> dict[str, Any]:
    """A return without its figures; `admin` adds whether it changed since it was made."""
    body = {
        "id": kpi_return.id,
        "scope": ALL_SCOPE if kpi_return.contract_id is None else "contract",
        "contract_id": kpi_return.contract_id,
        "scope_name": scope_label(kpi_return),
        "period": kpi_return.period,
        "version": kpi_return.version,
        "spec_version": kpi_return.spec_version,
        "generated_at": _instant(kpi_return.generated_at),
        "superseded": not kpi_return.is_current,
        "provisional": kpi_return.provisional,
    }
    if admin:
        body["changed_since_made"] = changed_since_made(kpi_return)
    return body


def _generated_by(kpi_return: KpiReturn) -> str | None:
    if kpi_return.generated_by is not None:
        return kpi_return.generated_by.name
    if kpi_return.generated_by_job == "cli":
        return "cli"
    if kpi_return.generated_by_job:
        return "job"
    return None


def figure_json(figure: dict[str, Any], *, raw: bool) -> dict[str, Any]:
    """A stored figure as the caller may see it: `raw_value` only when `raw` (admins)."""
    body = {key: figure.get(key) for key in FIGURE_FIELDS}
    body["suppressed"] = bool(body["suppressed"])
    body["span"] = span_of(figure)
    target = figure_target(figure, None) or {}
    for level in ("minimum", "expected", "stretch"):
        body[f"target_{level}"] = target.get(level)
    if raw:
        body["raw_value"] = figure.get("raw_value")
    return body


def return_json(kpi_return: KpiReturn, *, raw: bool) -> dict[str, Any]:
    return {
        **return_summary(kpi_return, admin=raw),
        "generated_by": _generated_by(kpi_return),
        "figures": [figure_json(f, raw=raw) for f in kpi_return.figures or []],
    }


# Requests -------------------------------------------------------------------------------


def _month(form: str) -> Any:
    return Field(json_schema_extra={"pattern": _MONTH, **format_schema(form)})


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


class ReturnRequest(Body):
    """Give either `contract_id` or `scope: all`, and a finished month."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["contract_id"], "properties": {"contract_id": {"type": "integer"}}},
                {"required": ["scope"], "properties": {"scope": {"const": ALL_SCOPE}}},
            ]
        }
    )
    contract_id: Id | None = None
    scope: Literal["all"] | None = Field(
        default=None, validate_default=True, description="All activity (admins only)"
    )
    period: Annotated[str, _month("past-month")]
    required = {"period": "Give the period as a year and month, like 2026-03"}

    @field_validator("scope")
    @classmethod
    def _one_scope(cls, scope: str | None, info: ValidationInfo) -> str | None:
        if "contract_id" not in info.data:  # refused itself
            return scope
        if scope is not None and info.data["contract_id"] is not None:
            raise refuse('Give contract_id or scope "all", not both')
        if scope is None and info.data["contract_id"] is None:
            raise refuse('Give a contract_id, or scope "all" for all activity', "contract_id")
        return scope

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
@operation(
    "List KPI returns",
    roles="admin (all), commissioner (their organisation's contracts; never all activity)",
    tags=["kpi"],
    query=ReturnsQuery,
    responses={
        200: json_response(
            "A page of returns, newest period first, without figures",
            page_of("KpiReturnSummary"),
        ),
        422: _INVALID_QUERY,
    },
)
def list_kpi_returns(query: ReturnsQuery) -> ResponseReturnValue:
    clauses: list[Any] = [] if query.include_superseded else [KpiReturn.superseded_at.is_(None)]
    if query.contract_id is not None:
        clauses.append(KpiReturn.contract_id == query.contract_id)
    if query.period is not None:
        clauses.append(KpiReturn.period == query.period)
    rows = scoped_returns().where(*clauses)
    rows = rows.order_by(
        KpiReturn.period.desc(),
        KpiReturn.scope_key,
        KpiReturn.version.desc(),
        KpiReturn.id.desc(),
    )
    admin = _is_admin()
    return jsonify(paginate(rows, query, lambda item: return_summary(item, admin=admin)))


@bp.post("/kpi/returns")
@allow(Role.ADMIN)
@operation(
    "Make a KPI return, or find the one already made",
    roles="admin",
    tags=["kpi"],
    body=ReturnRequest,
    responses={
        200: json_response("The return already made for this scope and month", ref("KpiReturn")),
        201: json_response("The return, made now", ref("KpiReturn")),
        422: _INVALID,
    },
)
def make_kpi_return(body: ReturnRequest) -> ResponseReturnValue:
    if body.contract_id is not None and db.session.get(Contract, body.contract_id) is None:
        raise validation_problem({"contract_id": ["There is no contract with this id"]})
    made = make_return(
        body.contract_id, Period.parse(body.period), today=clock.today(), actor=current_user
    )
    response = jsonify(return_json(made.kpi_return, raw=True))
    if made.created:
        response.status_code = 201
        response.headers["Location"] = url_for(
            "api.show_kpi_return", return_id=made.kpi_return.id, _external=False
        )
    return response


@bp.get("/kpi/returns/<int:return_id>")
@allow(*KPI_READERS)
@operation(
    "One KPI return with its figures",
    roles=_FILE_ROLES + "; raw_value for admins only",
    tags=["kpi"],
    responses={200: json_response("The return", ref("KpiReturn")), 404: _NOT_FOUND},
)
def show_kpi_return(return_id: int) -> ResponseReturnValue:
    return jsonify(return_json(get_return_or_404(return_id), raw=_is_admin()))


@bp.get("/kpi/returns/<int:return_id>.csv")
@allow(*KPI_READERS)
@operation(
    "A KPI return as CSV",
    roles=_FILE_ROLES + "; raw=true for admins only",
    tags=["kpi"],
    query=RawQuery,
    responses={
        200: _file_response(
            "text/csv",
            "One row per KPI, span and breakdown cell: period, scope, span, code, name, "
            "breakdown, value, suppressed, target_minimum, target_expected, target_stretch, "
            "target_rating, version, generated_at, then provisional (and, when an admin asks "
            "for raw figures, changed_since_made and raw_value). UTF-8 with a BOM; cells a "
            "spreadsheet would run as formulas are neutralised.",
        ),
        404: _NOT_FOUND,
        422: _INVALID_QUERY,
    },
)
def kpi_return_csv(return_id: int, query: RawQuery) -> ResponseReturnValue:
    kpi_return = get_return_or_404(return_id)
    if query.raw and not _is_admin():
        refuse_access("raw KPI figures")
    return _export(kpi_return, "csv", raw=query.raw)


@bp.get("/kpi/returns/<int:return_id>.pdf")
@allow(*KPI_READERS)
@operation(
    "A KPI return as PDF",
    roles=_FILE_ROLES,
    tags=["kpi"],
    responses={
        200: _file_response(
            "application/pdf",
            "The return's tables with targets rated, and a 12-month trend per headline KPI; "
            "published (small-number protected) figures only",
        ),
        404: _NOT_FOUND,
    },
)
def kpi_return_pdf(return_id: int) -> ResponseReturnValue:
    return _export(get_return_or_404(return_id), "pdf", raw=False)


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
