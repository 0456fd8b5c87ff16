"""The dates the service accepts, defined once.

The services enforce these checks, and the pages (form validators), the API and the CLI call
the same ones for the message at the field, so no way in can accept a date another refuses.
Pure: `today` is always an argument, never read from the clock here. Each check raises
`DateRefused` with a plain-English message and the name of the field it is about.

The bounds:
- nothing the service records happened before `EARLIEST` (1 January 2000);
- what has already happened (a referral received, a questionnaire recorded) is not in the future;
- nothing is planned more than `YEARS_AHEAD` years after today (a contract's start);
- a contract runs at most `MAX_CONTRACT_YEARS` years, and a course's sessions fall inside its
  contract, so every session and every reporting month is bounded too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

EARLIEST = date(2000, 1, 1)
YEARS_AHEAD = 10
MAX_CONTRACT_YEARS = 10
# The most monthly returns one contract can have: a month more than its years when it starts
# mid-month.
MAX_CONTRACT_MONTHS = MAX_CONTRACT_YEARS * 12 + 1

MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class DateRefused(ValueError):
    """A date outside what the service accepts; `field` names the input it is about."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def refusal(check: Callable[..., object], *args: Any, **kwargs: Any) -> DateRefused | None:
    """What `check(*args, **kwargs)` refuses, if anything: for readers and forms that collect
    every field's message before calling the service."""
    try:
        check(*args, **kwargs)
    except DateRefused as refused:
        return refused
    return None


def format_date(day: date) -> str:
    """Dates as people write them: 3 March 2026."""
    return f"{day.day} {MONTH_NAMES[day.month - 1]} {day.year}"


def add_years(day: date, years: int) -> date:
    """The same day `years` later (28 February for 29 February); the calendar's end at most."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        if day.year + years > date.max.year:
            return date.max
        return day.replace(year=day.year + years, day=28)


def latest_planned(today: date) -> date:
    """The last date anything may be planned for."""
    return add_years(today, YEARS_AHEAD)


def contract_end_limit(start: date) -> date:
    """The last day a contract starting on `start` may run to."""
    return add_years(start, MAX_CONTRACT_YEARS) - timedelta(days=1)


def _not_too_early(day: date, *, what: str, field: str) -> None:
    if day < EARLIEST:
        raise DateRefused(f"{what} must be on or after {format_date(EARLIEST)}", field)


def check_past(day: date, today: date, *, what: str = "The date", field: str) -> date:
    """A date something happened: from `EARLIEST` to today."""
    _not_too_early(day, what=what, field=field)
    if day > today:
        raise DateRefused(f"{what} must be today or in the past", field)
    return day


def check_received(day: date, today: date, field: str = "received_on") -> date:
    """The date a referral was received."""
    return check_past(day, today, what="Date received", field=field)


def check_recorded(day: date, today: date, field: str = "recorded_on") -> date:
    """The date a wellbeing questionnaire was completed."""
    return check_past(day, today, what="The date", field=field)


def check_contract(start: date, end: date, today: date) -> None:
    """A contract's term: starts from `EARLIEST` and at most `YEARS_AHEAD` years from today,
    ends on or after it starts, and runs at most `MAX_CONTRACT_YEARS` years."""
    _not_too_early(start, what="The start date", field="start_date")
    latest = latest_planned(today)
    if start > latest:
        raise DateRefused(
            f"The start date must be no more than {YEARS_AHEAD} years from today "
            f"(by {format_date(latest)})",
            "start_date",
        )
    if end < start:
        raise DateRefused("The end date must be on or after the start date", "end_date")
    limit = contract_end_limit(start)
    if end > limit:
        raise DateRefused(
            f"A contract runs for at most {MAX_CONTRACT_YEARS} years: "
            f"end it by {format_date(limit)}",
            "end_date",
        )


def check_within_contract(
    first: date, last: date, contract_start: date, contract_end: date, *, field: str
) -> None:
    """Sessions from `first` to `last` fall inside the contract that pays for them."""
    _not_too_early(first, what="Sessions", field=field)
    if first < contract_start:
        raise DateRefused(
            f"Sessions must be on or after the day the contract starts "
            f"({format_date(contract_start)})",
            field,
        )
    if last > contract_end:
        raise DateRefused(
            f"Sessions must be on or before the day the contract ends "
            f"({format_date(contract_end)}); the last would be on {format_date(last)}",
            field,
        )


def check_contract_holds(
    start: date, end: date, first_session: date | None, last_session: date | None
) -> None:
    """A changed contract term still holds every session of its courses."""
    if first_session is not None and first_session < start:
        raise DateRefused(
            f"This contract has sessions from {format_date(first_session)}: "
            "start it on or before then",
            "start_date",
        )
    if last_session is not None and last_session > end:
        raise DateRefused(
            f"This contract has sessions until {format_date(last_session)}: "
            "end it on or after then",
            "end_date",
        )
