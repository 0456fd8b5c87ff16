"""Working days in England: weekdays that are not bank holidays."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import holidays


@cache
def _bank_holidays_in(year: int) -> frozenset[date]:
    """England and Wales bank holidays in `year`, from the `holidays` package, as gov.uk lists
    them: weekdays only, so Christmas Day on a Saturday gives way to its substitute Monday."""
    calendar = holidays.country_holidays("GB", subdiv="ENG", years=year)
    return frozenset(day for day in calendar if day.weekday() < 5)


def is_bank_holiday(day: date) -> bool:
    return day in _bank_holidays_in(day.year)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and not is_bank_holiday(day)


def working_days_between(start: date, end: date) -> int:
    """Working days after `start` up to and including `end` (0 when end <= start)."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count


def add_working_days(start: date, days: int) -> date:
    day = start
    while days > 0:
        day += timedelta(days=1)
        days -= is_working_day(day)
    return day
