"""The KPI returns dashboard, return pages and downloads, and making returns (admins).

Commissioners see aggregates only, for their own contracts; admins see every contract, the
all-activity return and the unrounded figures.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from referrals import clock
from referrals.audit import record_now, record_view
from referrals.auth.models import Role
from referrals.courses.models import Contract
from referrals.exports import send_bytes
from referrals.extensions import db
from referrals.forms import Form
from referrals.pagination import Page
from referrals.reports import bp
from referrals.reports.csv_export import build_returns_csv
from referrals.reports.exporting import (
    export_return,
    generated_by,
    return_sections,
    scope_label,
)
from referrals.reports.kpi import HEADLINE_CODES, NAMES
from referrals.reports.labels import (
    SPAN_TITLES,
    SUPPRESSION_NOTE,
    SWEMWBS_NOTE,
    Row,
    breakdown_label,
    changed_since_made,
    return_rows,
    spans_in,
    target_text,
    withheld_cells,
)
from referrals.reports.models import KpiReturn
from referrals.reports.periods import InvalidPeriod, Period, Scope, check_reportable
from referrals.reports.scope import contracts_for, get_return_or_404, in_bounds
from referrals.reports.services import (
    ReturnRefused,
    current_return,
    make_return,
    regenerate_return,
    registers_close_on,
    returns_for_contract,
)
from referrals.reports.trends import Trend, headline_trends, return_trends, trend_chart
from referrals.security import allow

READERS = (Role.COMMISSIONER, Role.ADMIN)
CONTRACTS_PER_PAGE = 10
ALL_ACTIVITY = "all"


# Presenting figures -------------------------------------------------------------------------


@bp.record_once
def _add_notes(state: Any) -> None:
    # A global, so the shared macros (imported without the page's context) can read it.
    state.app.jinja_env.globals["kpi_suppression_note"] = SUPPRESSION_NOTE


@bp.app_template_filter("kpi_breakdown")
def _breakdown_filter(breakdown: str) -> str:
    return breakdown_label(breakdown)


@bp.app_template_filter("kpi_span")
def _span_filter(span: str) -> str:
    return SPAN_TITLES.get(span, span)


@bp.app_template_filter("kpi_target")
def _target_filter(target: dict[str, Any] | None) -> str:
    return target_text(target)


@dataclass(frozen=True)
class Listing:
    """One version of a return, as the dashboard lists it (no figures)."""

    id: int
    period: Period
    version: int
    generated_at: datetime
    is_current: bool
    provisional: bool = False
    changed_since_made: bool = False  # shown to admins only


@dataclass
class ScopeReport:
    """What the dashboard shows for one contract, or for all activity."""

    anchor: str
    title: str
    contract: Contract | None
    latest: KpiReturn | None = None
    headlines: list[Row] = field(default_factory=list)
    spans: list[str] = field(default_factory=list)
    trends: list[tuple[Trend, Markup]] = field(default_factory=list)
    returns: list[Listing] = field(default_factory=list)

    @property
    def latest_period(self) -> Period | None:
        return Period.parse(self.latest.period) if self.latest is not None else None

    @property
    def latest_changed(self) -> bool:
        return self.latest is not None and changed_since_made(self.latest)


def headlines_of(kpi_return: KpiReturn) -> list[Row]:
    """The headline KPIs, each with its month, year-to-date and contract-to-date cells."""
    rows = {
        row.code: row
        for row in return_rows(kpi_return.figures, kpi_return.targets)
        if not row.breakdown
    }
    return [rows[code] for code in HEADLINE_CODES if code in rows]


def scope_reports(contracts: list[Contract], *, include_all: bool) -> list[ScopeReport]:
    """Sections for the dashboard.

    Queries: one lists every version (without figures), then two per section (the latest
    return, and its twelve-month trends), however many months there are.
    """
    reports = [ScopeReport("all-activity", "All activity", None)] if include_all else []
    reports += [ScopeReport(f"contract-{c.id}", c.name, c) for c in contracts]
    keys = {Scope(r.contract.id if r.contract else None).key: r for r in reports}
    if not keys:
        return reports
    rows = db.session.execute(
        select(
            KpiReturn.id,
            KpiReturn.scope_key,
            KpiReturn.period,
            KpiReturn.version,
            KpiReturn.generated_at,
            KpiReturn.superseded_at,
            KpiReturn.provisional,
            KpiReturn.registers_changed_at,
        )
        .where(KpiReturn.scope_key.in_(list(keys)), in_bounds())
        .order_by(KpiReturn.period.desc(), KpiReturn.version.desc())
    ).all()
    listings: dict[str, list[Listing]] = defaultdict(list)
    for row in rows:
        listings[row.scope_key].append(
            Listing(
                row.id,
                Period.parse(row.period),
                row.version,
                row.generated_at,
                row.superseded_at is None,
                row.provisional,
                changed_since_made(row),
            )
        )
    for key, report in keys.items():
        report.returns = listings.get(key, [])
        latest = next((item for item in report.returns if item.is_current), None)
        if latest is None:
            continue
        report.latest = db.session.get(KpiReturn, latest.id)
        if report.latest is None:  # pragma: no cover  (removed between the two queries)
            continue
        trends = headline_trends(key, latest.period)
        report.headlines = headlines_of(report.latest)
        report.spans = spans_in(report.latest.figures)
        report.trends = [
            (trend, trend_chart(trend, chart_id=f"{report.anchor}-{trend.code.lower()}"))
            for trend in trends
        ]
    return reports


# Dashboard and return pages -----------------------------------------------------------------


@bp.get("/")
@allow(*READERS)
def dashboard() -> ResponseReturnValue:
    is_admin = current_user.role == Role.ADMIN
    page = Page.from_request(
        contracts_for(current_user).options(joinedload(Contract.commissioner)),
        per_page=CONTRACTS_PER_PAGE,
    )
    reports = scope_reports(page.items, include_all=is_admin and page.page == 1)
    return render_template(
        "reports/dashboard.html",
        reports=reports,
        page=page,
        is_admin=is_admin,
        last_finished=Period.containing(clock.today()).previous(),
    )


def _figure_sections(kpi_return: KpiReturn) -> list[tuple[str, str, list[Row], list[str]]]:
    """Each section's title, note, rows and the spans its rows have (as the PDF lays them)."""
    by_letter: dict[str, list[Row]] = defaultdict(list)
    for row in return_rows(kpi_return.figures, kpi_return.targets):
        by_letter[row.code[:1]].append(row)
    spans = spans_in(kpi_return.figures)
    sections = []
    for title, note in return_sections(kpi_return):
        rows = by_letter.get(title[0], [])
        sections.append((title, note, rows, [s for s in spans if any(s in r.cells for r in rows)]))
    return sections


@bp.get("/<int:return_id>")
@allow(*READERS)
def kpi_return(return_id: int) -> ResponseReturnValue:
    item = get_return_or_404(return_id, current_user)
    # A return's notes and regeneration reasons are free text that may name people.
    record_view(current_user, "kpi_return.viewed", item)
    period = Period.parse(item.period)
    replacement = None
    if not item.is_current:
        replacement = current_return(Scope(item.contract_id), period)
    trends = return_trends(item)
    return render_template(
        "reports/return.html",
        kpi_return=item,
        period=period,
        scope_title=scope_label(item),
        made_by=generated_by(item),
        headlines=headlines_of(item),
        sections=_figure_sections(item),
        spans=spans_in(item.figures),
        trends=[
            (trend, trend_chart(trend, chart_id=f"return-{trend.code.lower()}")) for trend in trends
        ],
        withheld=withheld_cells(item.suppression_log),
        changed=changed_since_made(item),
        kpi_names=NAMES,
        swemwbs_note=SWEMWBS_NOTE,
        replacement=replacement,
        is_admin=current_user.role == Role.ADMIN,
        registers_close=registers_close_on(period),
    )


@bp.get("/<int:return_id>.<any(csv, pdf):fmt>")
@allow(*READERS)
def download(return_id: int, fmt: str) -> ResponseReturnValue:
    item = get_return_or_404(return_id, current_user)
    raw = current_user.role == Role.ADMIN and request.args.get("raw") == "1"
    content, filename, mimetype = export_return(item, fmt, raw=raw)
    record_now(current_user, "kpi_return.exported", item, format=fmt, raw=raw)
    return send_bytes(content, filename, mimetype)


@bp.get("/contracts/<int:contract_id>/returns.csv")
@allow(*READERS)
def contract_csv(contract_id: int) -> ResponseReturnValue:
    """Every current return of a contract in one CSV, for trend analysis; `from` and `to`
    (YYYY-MM) narrow the months."""
    contract = db.first_or_404(contracts_for(current_user).where(Contract.id == contract_id))
    try:
        first = Period.parse(request.args["from"]) if request.args.get("from") else None
        last = Period.parse(request.args["to"]) if request.args.get("to") else None
    except InvalidPeriod as error:
        return {"error": str(error)}, 400
    chosen = [
        r
        for r in reversed(returns_for_contract(contract.id))
        if (first is None or r.period >= first.key) and (last is None or r.period <= last.key)
    ]
    raw = current_user.role == Role.ADMIN and request.args.get("raw") == "1"
    content = build_returns_csv(chosen, scope_label=contract.name, raw=raw)
    record_now(current_user, "kpi_return.exported", contract, format="csv-months", raw=raw)
    return send_bytes(content, f"kpi-returns-contract-{contract.id}.csv", "text/csv")


# Making and regenerating returns (admins) -------------------------------------------------


class GenerateForm(Form):
    scope = SelectField("Contract", choices=[], validate_choice=False)
    period = StringField("Month")


class RegenerateForm(Form):
    reason = TextAreaField(
        "Why are you regenerating this return?",
        validators=[
            DataRequired("Give a reason for regenerating the return"),
            Length(max=2000, message="Reason must be 2000 characters or fewer"),
        ],
    )


def _scope_choice(text: str) -> tuple[bool, int | None]:
    """(valid, contract id) from the scope field: `all` or a contract id."""
    if text == ALL_ACTIVITY:
        return True, None
    if text.isascii() and text.isdigit() and len(text) < 10:
        return True, int(text)
    return False, None


@bp.route("/generate", methods=["GET", "POST"])
@allow(Role.ADMIN)
def generate() -> ResponseReturnValue:
    last_finished = Period.containing(clock.today()).previous()
    form = GenerateForm()
    form.scope.choices = [
        ("", "Choose a contract"),
        (ALL_ACTIVITY, "All activity"),
        *(
            (str(contract_id), name)
            for contract_id, name in db.session.execute(
                select(Contract.id, Contract.name).order_by(Contract.name)
            )
        ),
    ]
    if request.method == "GET" and not form.period.data:
        form.period.data = last_finished.key
    if form.validate_on_submit():
        valid_scope, contract_id = _scope_choice(form.scope.data or "")
        period: Period | None = None
        if not valid_scope:
            form.scope.errors = ["Choose a contract, or all activity"]
        try:
            period = Period.parse(form.period.data or "")
            check_reportable(period, clock.today())
        except InvalidPeriod as error:
            form.period.errors = [str(error)]
        if valid_scope and period is not None and not form.period.errors:
            try:
                made = make_return(contract_id, period, today=clock.today(), actor=current_user)
            except InvalidPeriod as error:
                db.session.rollback()
                form.period.errors = [str(error)]
            except ReturnRefused as error:
                db.session.rollback()
                target = form.period if error.field == "period" else form.scope
                target.errors = [str(error)]
            else:
                label = scope_label(made.kpi_return)
                if made.created and made.kpi_return.provisional:
                    flash(
                        f"Provisional return made for {label}, {period.label}: its registers "
                        f"close on {registers_close_on(period):%-d %B %Y}, when the final "
                        "return is made",
                        "success",
                    )
                elif made.created:
                    flash(f"Return made for {label}, {period.label}", "success")
                else:
                    flash(
                        f"A return for {label}, {period.label} already exists. "
                        "To remake it from today's records, regenerate it with a reason",
                        "info",
                    )
                return redirect(url_for("reports.kpi_return", return_id=made.kpi_return.id))
    return render_template(
        "reports/generate.html",
        form=form,
        last_finished=last_finished,
        edit_days=(registers_close_on(last_finished) - last_finished.end).days - 1,
        page_has_errors=bool(form.errors),
    )


@bp.route("/<int:return_id>/regenerate", methods=["GET", "POST"])
@allow(Role.ADMIN)
def regenerate(return_id: int) -> ResponseReturnValue:
    item = get_return_or_404(return_id, current_user)
    period = Period.parse(item.period)
    form = RegenerateForm()
    if form.validate_on_submit():
        try:
            made = regenerate_return(
                current_user, item.contract_id, period, form.reason.data or "", today=clock.today()
            )
        except (ReturnRefused, InvalidPeriod) as error:
            db.session.rollback()
            if getattr(error, "field", None) == "reason":
                form.reason.errors = [str(error)]
            else:
                form.form_errors.append(str(error))
        else:
            flash(
                f"Version {made.version} made for {scope_label(made)}, {period.label}. "
                f"Version {made.version - 1} is kept, marked superseded",
                "success",
            )
            return redirect(url_for("reports.kpi_return", return_id=made.id))
    return render_template(
        "reports/regenerate.html",
        kpi_return=item,
        period=period,
        scope_title=scope_label(item),
        form=form,
        page_has_errors=bool(form.errors or form.form_errors),
    )


# Commissioner home page -------------------------------------------------------------------
