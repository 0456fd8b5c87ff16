"""Twelve-month trends of headline KPIs, read from the stored returns (as they were made)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup
from sqlalchemy import select

from referrals.charts import Band, Series, line_chart
from referrals.courses.kpi_targets import target_for
from referrals.extensions import db
from referrals.reports.kpi import HEADLINE_CODES, NAMES
from referrals.reports.labels import span_of
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period, last_periods


@dataclass(frozen=True)
class Trend:
    code: str
    name: str
    periods: list[Period]
    values: list[Decimal | None]  # None where there is no return or the figure is `*` or empty
    shown: list[str]  # as published: a number, "*", "" (or "–" with no return)
    target: dict[str, float] | None


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        return None


def month_headline(figures: list[dict[str, Any]], code: str) -> dict[str, Any] | None:
    """A stored return's month figure for a KPI (not a breakdown cell, not another span)."""
    return next(
        (f for f in figures if f["code"] == code and not f["breakdown"] and span_of(f) == "month"),
        None,
    )


def headline_trends(
    scope_key: str, latest: Period, *, months: int = 12, raw: bool = False
) -> list[Trend]:
    """Each headline KPI over the `months` periods ending with `latest`."""
    periods = last_periods(latest, months)
    returns = {
        r.period: r
        for r in db.session.scalars(
            select(KpiReturn).where(
                KpiReturn.scope_key == scope_key,
                KpiReturn.period.in_([p.key for p in periods]),
                KpiReturn.superseded_at.is_(None),
            )
        )
    }
    trends = []
    for code in HEADLINE_CODES:
        values: list[Decimal | None] = []
        shown: list[str] = []
        target = None
        for period in periods:
            kpi_return = returns.get(period.key)
            if kpi_return is None:
                values.append(None)
                shown.append("–")
                continue
            figure = month_headline(kpi_return.figures, code)
            text = "" if figure is None else figure["raw_value" if raw else "value"]
            shown.append(text)
            values.append(_number(text))
            target = target_for(kpi_return.targets, code, "month") or target
        trends.append(Trend(code, NAMES[code], periods, values, shown, target))
    return trends


def return_trends(kpi_return: KpiReturn, *, months: int = 12) -> list[Trend]:
    """The headline trends a return shows (its PDF and its page): the current returns of the
    months before it, and this return's own month figures and targets, so a superseded version
    shows its month as it was published."""
    period = Period.parse(kpi_return.period)
    trends = []
    for trend in headline_trends(kpi_return.scope_key, period, months=months):
        figure = month_headline(kpi_return.figures, trend.code)
        shown = "" if figure is None else figure["value"]
        trends.append(
            replace(
                trend,
                values=[*trend.values[:-1], _number(shown)],
                shown=[*trend.shown[:-1], shown],
                target=target_for(kpi_return.targets, trend.code, "month"),
            )
        )
    return trends


def trend_chart(trend: Trend, *, chart_id: str) -> Markup:
    bands = []
    if trend.target:
        bands.append(
            Band(
                "Target: minimum to expected",
                float(trend.target["minimum"]),
                float(trend.target["expected"]),
            )
        )
    return line_chart(
        f"{trend.code} {trend.name}: last 12 months",
        [p.short_label for p in trend.periods],
        [Series(trend.code, [float(v) if v is not None else None for v in trend.values])],
        bands=bands,
        description=(
            f"{trend.name} each month from {trend.periods[0].label} to "
            f"{trend.periods[-1].label}. Months with a suppressed figure or no return "
            "are gaps. The table gives the same figures."
        ),
        chart_id=chart_id,
    )
