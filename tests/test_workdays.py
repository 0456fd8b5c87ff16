"""Working days and bank holidays in England and Wales, for any year."""

from __future__ import annotations

from datetime import date

from referrals.workdays import (
    add_working_days,
    is_bank_holiday,
    is_working_day,
    working_days_between,
)


def test_christmas_and_new_year_2028_29_are_bank_holidays():
    assert is_bank_holiday(date(2028, 12, 25))
    assert is_bank_holiday(date(2028, 12, 26))
    assert is_bank_holiday(date(2029, 1, 1))
    assert not is_working_day(date(2029, 1, 1))
    assert is_working_day(date(2028, 12, 27))


def test_working_days_over_the_2028_29_christmas():
    # Friday 22 December 2028 to Tuesday 2 January 2029: 27, 28, 29 December and 2 January.
    assert working_days_between(date(2028, 12, 22), date(2029, 1, 2)) == 4
    # Three working days after Friday 22 December 2028 is Friday 29 December.
    assert add_working_days(date(2028, 12, 22), 3) == date(2028, 12, 29)
    assert add_working_days(date(2028, 12, 29), 1) == date(2029, 1, 2)


def test_substitute_days_when_christmas_falls_at_a_weekend():
    # 2027: Christmas Day and Boxing Day are Saturday and Sunday; 27 and 28 December are off.
    assert [is_bank_holiday(date(2027, 12, d)) for d in (24, 25, 26, 27, 28)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert not is_working_day(date(2027, 12, 27))
    assert not is_working_day(date(2027, 12, 28))
    assert working_days_between(date(2027, 12, 24), date(2027, 12, 29)) == 1


def test_easter_moves_every_year():
    assert not is_working_day(date(2030, 4, 19))  # Good Friday 2030
    assert not is_working_day(date(2030, 4, 22))  # Easter Monday 2030
    assert is_working_day(date(2029, 4, 19))
