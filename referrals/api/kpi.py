"""KPI returns over the API: list, make (or find), read, and download as CSV or PDF.

Commissioners see the returns of their own organisation's contracts, never the all-activity
return, and only the published figures (the small-number rule applied, kpi-spec.md). Admins
see every return and, beside each figure, the unrounded `raw_value`. A return outside the
caller's scope answers 404, as an unknown id does.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import Select, select

from referrals.api import bp
from referrals.api.body import json_object
from referrals.api.openapi import (
    PAGE_PARAMETERS,
    PROBLEM_RESPONSE,
    format_schema,
    integral,
    json_response,
    operation,
    page_of,
    ref,
    register_schema,
)
from referrals.api.pagination import page_args, paginate
from referrals.api.problems import ApiProblem, validation_problem
from referrals.audit import record_now
from referrals.auth.models import Role
from referrals.courses.models import Contract
from referrals.exports import send_bytes
from referrals.extensions import db
from referrals.ids import MAX_ID
from referrals.reports.csv_export import FIGURE_FIELDS
from referrals.reports.exporting import export_return, scope_label
from referrals.reports.labels import changed_since_made, figure_target, span_of
from referrals.reports.models import KpiReturn
from referrals.reports.periods import InvalidPeriod, Period, check_reportable
from referrals.reports.scope import return_scope
from referrals.reports.services import ReturnRefused, make_return
from referrals.security import allow, refuse_access

KPI_READERS = (Role.ADMIN, Role.COMMISSIONER)
LONDON = ZoneInfo("Europe/London")
ALL_SCOPE = "all"
RETURN_REQUEST_FIELDS = frozenset({"contract_id", "scope", "period"})
RATINGS = ["red", "amber", "green", "stretch met"]

# Schemas --------------------------------------------------------------------------------

_PERIOD_SCHEMA = {"type": "string", "pattern": r"^\d{4}-\d{2}$", **format_schema("month")}
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
register_schema(
    "KpiReturnRequest",
    {
        "type": "object",
        "description": "Give either `contract_id` or `scope: all`, and a finished month",
        "required": ["period"],
        "additionalProperties": False,
        "oneOf": [{"required": ["contract_id"]}, {"required": ["scope"]}],
        "properties": {
            "contract_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "scope": {"type": "string", "enum": [ALL_SCOPE]},
            "period": {**_PERIOD_SCHEMA, **format_schema("past-month")},
        },
    },
)

_INVALID = {**PROBLEM_RESPONSE, "description": "Invalid input, with `errors` by field"}
_NOT_FOUND = {**PROBLEM_RESPONSE, "description": "No such return, or outside the caller's scope"}
_RETURN_ID = {"description": "The return's id"}
_FILE_ROLES = "admin (all), commissioner (their organisation's contracts)"


def _file_response(mimetype: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {mimetype: {"schema": {"type": "string", "format": "binary"}}},
    }


# Helpers --------------------------------------------------------------------------------


def today() -> date:
    return datetime.now(LONDON).date()


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


def _flag(name: str, errors: dict[str, list[str]]) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        errors[name] = ["Must be true or false"]
        return False
    return value == "true"


def _query_id(name: str, errors: dict[str, list[str]]) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 1 <= int(raw) <= MAX_ID:
        errors[name] = ["Must be a whole number of 1 or more"]
        return None
    return int(raw)


def _return_request(payload: dict[str, Any]) -> tuple[int | None, Period]:
    """Check a POST body: exactly one of contract_id and scope `all`, and a finished month."""
    errors: dict[str, list[str]] = {}
    for key in sorted(set(payload) - RETURN_REQUEST_FIELDS):
        errors[str(key)[:60]] = ["Unknown field"]

    contract_id = integral(payload.get("contract_id"))
    scope = payload.get("scope")
    if contract_id is not None and (
        isinstance(contract_id, bool)
        or not isinstance(contract_id, int)
        or not 1 <= contract_id <= MAX_ID
    ):
        errors["contract_id"] = ["Must be a contract's id, a whole number of 1 or more"]
    elif contract_id is not None and db.session.get(Contract, contract_id) is None:
        errors["contract_id"] = ["There is no contract with this id"]
    if scope is not None and scope != ALL_SCOPE:
        errors["scope"] = ['The only scope to give is "all" (all activity); else give contract_id']
    elif scope is not None and contract_id is not None:
        errors["scope"] = ['Give contract_id or scope "all", not both']
    if contract_id is None and scope is None:
        errors["contract_id"] = ['Give a contract_id, or scope "all" for all activity']

    period: Period | None = None
    raw_period = payload.get("period")
    if raw_period is None or raw_period == "":
        errors["period"] = ["Give the period as a year and month, like 2026-03"]
    elif not isinstance(raw_period, str):
        errors["period"] = ["Must be a string, like 2026-03"]
    else:
        try:
            period = Period.parse(raw_period)
            check_reportable(period, today())
        except InvalidPeriod as error:
            errors["period"] = [str(error)]
    if errors:
        raise validation_problem(errors)
    assert period is not None
    return contract_id, period


# Endpoints ------------------------------------------------------------------------------


@bp.get("/kpi/returns")
@allow(*KPI_READERS)
@operation(
    "List KPI returns",
    roles="admin (all), commissioner (their organisation's contracts; never all activity)",
    tags=["kpi"],
    parameters=[
        *PAGE_PARAMETERS,
        {
            "name": "contract_id",
            "in": "query",
            "description": "Only this contract's returns",
            "schema": {"type": "integer", "minimum": 1},
        },
        {
            "name": "period",
            "in": "query",
            "description": "Only this month, YYYY-MM",
            "schema": _PERIOD_SCHEMA,
        },
        {
            "name": "include_superseded",
            "in": "query",
            "description": "Also list versions replaced by a regeneration",
            "schema": {"type": "boolean", "default": False},
        },
    ],
    responses={
        200: json_response(
            "A page of returns, newest period first, without figures",
            page_of("KpiReturnSummary"),
        ),
        422: _INVALID,
    },
)
def list_kpi_returns() -> ResponseReturnValue:
    errors: dict[str, list[str]] = {}
    contract_id = _query_id("contract_id", errors)
    include_superseded = _flag("include_superseded", errors)
    period: Period | None = None
    if request.args.get("period"):
        try:
            period = Period.parse(request.args["period"])
        except InvalidPeriod as error:
            errors["period"] = [str(error)]
    try:
        page_args()
    except ApiProblem as paging:
        errors.update({k: list(v) for k, v in (paging.errors or {}).items()})
    if errors:
        raise validation_problem(errors)

    query = scoped_returns()
    if contract_id is not None:
        query = query.where(KpiReturn.contract_id == contract_id)
    if period is not None:
        query = query.where(KpiReturn.period == period.key)
    if not include_superseded:
        query = query.where(KpiReturn.superseded_at.is_(None))
    query = query.order_by(
        KpiReturn.period.desc(),
        KpiReturn.scope_key,
        KpiReturn.version.desc(),
        KpiReturn.id.desc(),
    )
    admin = _is_admin()
    return jsonify(paginate(query, lambda item: return_summary(item, admin=admin)))


@bp.post("/kpi/returns")
@allow(Role.ADMIN)
@operation(
    "Make a KPI return, or find the one already made",
    roles="admin",
    tags=["kpi"],
    request_body=ref("KpiReturnRequest"),
    responses={
        200: json_response("The return already made for this scope and month", ref("KpiReturn")),
        201: json_response("The return, made now", ref("KpiReturn")),
        422: _INVALID,
    },
)
def make_kpi_return() -> ResponseReturnValue:
    contract_id, period = _return_request(json_object())
    try:
        made = make_return(contract_id, period, today=today(), actor=current_user)
    except (InvalidPeriod, ReturnRefused) as error:  # checked above; kept for a race
        db.session.rollback()
        field = getattr(error, "field", None) or "period"
        raise validation_problem({field: [str(error)]}) from error
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
    parameters=[
        {
            "name": "raw",
            "in": "query",
            "description": "Admins only: add a raw_value column with the unrounded figures",
            "schema": {"type": "boolean", "default": False},
        }
    ],
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
        422: _INVALID,
    },
)
def kpi_return_csv(return_id: int) -> ResponseReturnValue:
    errors: dict[str, list[str]] = {}
    raw = _flag("raw", errors)
    if errors:
        raise validation_problem(errors)
    kpi_return = get_return_or_404(return_id)
    if raw and not _is_admin():
        refuse_access("raw KPI figures")
    return _export(kpi_return, "csv", raw=raw)


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
