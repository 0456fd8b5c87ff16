"""Calendar-month reporting periods (`YYYY-MM`) and return scopes."""

from __future__ import annotations

import calendar
import enum
import re
from dataclasses import dataclass
from datetime import date

from referrals.dates import EARLIEST, MAX_CONTRACT_MONTHS

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


class InvalidPeriod(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match((text or "").strip())
        if not match:
            raise InvalidPeriod("Enter the period as a year and month, like 2026-03")
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise InvalidPeriod("Enter a real month, like 2026-03")
        period = cls(year, month)
        check_in_bounds(period)
        return period

    @classmethod
    def containing(cls, day: date) -> Period:
        return cls(day.year, day.month)

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        return f"{calendar.month_name[self.month]} {self.year}"

    @property
    def short_label(self) -> str:
        return f"{calendar.month_abbr[self.month]} {self.year % 100:02d}"

    def previous(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    def next(self) -> Period:
        return Period(self.year + 1, 1) if self.month == 12 else Period(self.year, self.month + 1)

    def is_finished(self, today: date) -> bool:
        return self.end < today

    def __str__(self) -> str:
        return self.key


def last_periods(latest: Period, count: int) -> list[Period]:
    """`count` periods ending with `latest`, oldest first."""
    periods = [latest]
    while len(periods) < count:
        periods.append(periods[-1].previous())
    return periods[::-1]


def periods_between(first: Period, last: Period) -> list[Period]:
    periods = []
    current = first
    while current <= last:
        periods.append(current)
        current = current.next()
    return periods


FIRST = Period.containing(EARLIEST)


def check_in_bounds(period: Period) -> None:
    """No month before the service's first date (referrals.dates.EARLIEST)."""
    if period < FIRST:
        raise InvalidPeriod(f"Enter a month from {FIRST.key} onwards, like 2026-03")


def check_reportable(period: Period, today: date) -> None:
    """Returns are made for finished months within the bounds only."""
    check_in_bounds(period)
    if not period.is_finished(today):
        raise InvalidPeriod(f"{period.label} has not finished yet; returns are for past months")


def months_to_report(start: date, end: date, today: date) -> list[Period]:
    """A contract's finished months, up to last month: at most its longest possible term
    (`MAX_CONTRACT_MONTHS`) and never before `FIRST`, whatever dates are stored."""
    last = min(Period.containing(end), Period.containing(today).previous())
    earliest = max(Period.containing(start), FIRST)
    months = periods_between(earliest, last)
    return months[-MAX_CONTRACT_MONTHS:]


@dataclass(frozen=True)
class Scope:
    """A contract's courses, or all activity (admins only)."""

    contract_id: int | None

    ALL_KEY = "all"

    @property
    def key(self) -> str:
        return self.ALL_KEY if self.contract_id is None else f"contract:{self.contract_id}"

    @property
    def is_all(self) -> bool:
        return self.contract_id is None


class Span(enum.StrEnum):
    """What a figure is computed over: the month, or the whole span up to its end."""

    MONTH = "month"
    YEAR_TO_DATE = "year_to_date"
    CONTRACT_TO_DATE = "contract_to_date"

    @property
    def label(self) -> str:
        return _SPAN_LABELS[self]


_SPAN_LABELS = {
    Span.MONTH: "Month",
    Span.YEAR_TO_DATE: "Year to date",
    Span.CONTRACT_TO_DATE: "Contract to date",
}
FINANCIAL_YEAR_START_MONTH = 4  # the NHS financial year starts on 1 April


@dataclass(frozen=True)
class Window:
    """The dates a span of a return covers, both inclusive."""

    span: Span
    start: date
    end: date


def financial_year_start(day: date) -> date:
    year = day.year if day.month >= FINANCIAL_YEAR_START_MONTH else day.year - 1
    return date(year, FINANCIAL_YEAR_START_MONTH, 1)


def windows(period: Period, contract_start: date | None) -> list[Window]:
    """The month, the financial year to date and (for a contract) the contract to date.

    Every span ends with the period. A contract that started during the month covers the
    month; the all-activity return has no contract, so no contract-to-date span.
    """
    spans = [
        Window(Span.MONTH, period.start, period.end),
        Window(Span.YEAR_TO_DATE, financial_year_start(period.end), period.end),
    ]
    if contract_start is not None:
        spans.append(Window(Span.CONTRACT_TO_DATE, min(contract_start, period.start), period.end))
    return spans
