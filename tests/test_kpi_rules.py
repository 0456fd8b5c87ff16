"""The pure rules behind commissioner-facing figures, checked against kpi-spec.md by hand.

Small numbers (spec v2): 0 stays 0; 1 to 7 is shown as `*`; any other count is rounded to the
nearest 5; a mean, median or percentage computed over 1 to 7 people is `*`; a percentage is
computed from the true counts, to a whole per cent, and is `*` when its numerator or
denominator is 1 to 7.

Targets (spec v2): short of minimum red; minimum to short of expected amber; expected or better
green; stretch or better "stretch met"; for a lower-is-better KPI the levels run downwards.
Ratings are made from true figures, so a `*` is rated like any other figure.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.reports.periods import InvalidPeriod, Period
from referrals.reports.rules import (
    SUPPRESSED,
    Direction,
    percentage,
    protect_percentage,
    protect_statistic,
    rate,
    round_count,
)

# round_count ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, 0),  # 0 stays 0
        (1, "*"),  # 1-7 suppressed
        (2, "*"),
        (5, "*"),  # 5 is a multiple of 5, but still 1-7
        (7, "*"),  # top of the small range
        (8, 10),  # 8 -> nearest 5 is 10
        (9, 10),
        (10, 10),
        (11, 10),
        (12, 10),  # 12 -> 10 (2 away from 10, 3 from 15)
        (13, 15),  # 13 -> 15
        (17, 15),
        (18, 20),
        (22, 20),
        (23, 25),
        (998, 1000),
        (1000, 1000),
        (1002, 1000),
        (1003, 1005),
    ],
)
def test_round_count(count: int, shown: int | str) -> None:
    assert round_count(count) == shown


def test_round_count_refuses_negative_counts() -> None:
    with pytest.raises(ValueError):
        round_count(-1)


# protect_statistic (means and medians) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("people", "shown"),
    [
        (0, None),  # over nobody: empty
        (1, "*"),
        (7, "*"),  # a mean over 7 people is suppressed
        (8, Decimal("19.75")),  # over 8 it is shown, unrounded to 5 (only counts are rounded)
        (1000, Decimal("19.75")),
    ],
)
def test_protect_statistic(people: int, shown: Decimal | str | None) -> None:
    assert protect_statistic(Decimal("19.75"), people) == shown


def test_protect_statistic_of_no_value_is_empty() -> None:
    assert protect_statistic(None, 8) is None
    assert protect_statistic(None, 3) is None


# percentage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "places", "expected"),
    [
        (0, 0, 1, None),  # nothing to divide by: empty
        (0, 8, 1, Decimal("0.0")),
        (1, 3, 1, Decimal("33.3")),  # 33.33...
        (2, 3, 1, Decimal("66.7")),  # 66.66... rounds up
        (1, 8, 1, Decimal("12.5")),
        (1, 16, 1, Decimal("6.3")),  # 6.25: half rounds up
        (3, 8, 1, Decimal("37.5")),
        (1, 2000, 1, Decimal("0.1")),  # 0.05: half rounds up
        (1, 2001, 1, Decimal("0.0")),  # 0.049975
        (5, 5, 1, Decimal("100.0")),
        (1, 3, 2, Decimal("33.33")),
        (2, 3, 0, Decimal("67")),
    ],
)
def test_percentage(
    numerator: int, denominator: int, places: int, expected: Decimal | None
) -> None:
    result = percentage(numerator, denominator, places)
    assert result == expected
    if expected is not None:
        assert str(result) == str(expected)  # the stated number of decimals


# protect_percentage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "shown"),
    [
        (0, 0, None),  # no denominator: empty
        # Denominator 1-7 people: "*" whatever the numerator (spec).
        (0, 1, "*"),
        (1, 1, "*"),
        (0, 7, "*"),
        (3, 7, "*"),
        (7, 7, "*"),
        # Numerator 1-7 over 8 or more: "*" (a share of 5 people out of 40 discloses 5).
        (1, 8, "*"),
        (7, 8, "*"),
        (7, 1000, "*"),
        # 0 stays 0.
        (0, 8, Decimal("0")),
        (0, 1000, Decimal("0")),
        # From the TRUE counts, to a whole per cent (spec v2):
        (8, 8, Decimal("100")),
        (8, 12, Decimal("67")),  # 66.67 (v1 made it 100 from the rounded 10 / 10)
        (8, 13, Decimal("62")),  # 61.54
        (9, 12, Decimal("75")),  # C5 in the audit: 9 of 12, once published as 100.0
        (13, 1000, Decimal("1")),  # 1.3
        (51, 63, Decimal("81")),  # 80.95
        (68, 87, Decimal("78")),  # 78.16
        (29, 40, Decimal("73")),  # 72.5 rounds half up
        (1000, 1000, Decimal("100")),
    ],
)
def test_protect_percentage(numerator: int, denominator: int, shown: Decimal | str | None) -> None:
    assert protect_percentage(numerator, denominator) == shown


# rate -------------------------------------------------------------------------------------------

TARGET = {"minimum": 40, "expected": 50, "stretch": 60}


@pytest.mark.parametrize(
    ("value", "rating"),
    [
        (0, "red"),
        (39, "red"),  # just below minimum
        (Decimal("39.9"), "red"),
        (40, "amber"),  # equal to minimum
        (49, "amber"),
        (Decimal("49.99"), "amber"),  # just below expected
        (50, "green"),  # equal to expected
        (59, "green"),
        (60, "stretch met"),  # equal to stretch
        (1000, "stretch met"),
        ("45", "amber"),  # a figure as text
        (Decimal("50.0"), "green"),
    ],
)
def test_rate_boundaries(value: Decimal | int | str, rating: str) -> None:
    assert rate(value, TARGET) == rating


def test_rate_with_fractional_targets() -> None:
    # Targets come back from JSON as floats; 76.9 must equal the figure 76.9 exactly.
    target = {"minimum": 76.9, "expected": 80.5, "stretch": 90.25}
    assert rate(Decimal("76.8"), target) == "red"
    assert rate(Decimal("76.9"), target) == "amber"
    assert rate(Decimal("80.5"), target) == "green"
    assert rate(Decimal("90.25"), target) == "stretch met"


def test_rate_when_levels_coincide() -> None:
    same = {"minimum": 10, "expected": 10, "stretch": 10}
    assert rate(9, same) == "red"
    assert rate(10, same) == "stretch met"


def test_rate_without_a_stretch_level() -> None:
    target = {"minimum": 40, "expected": 50}
    assert rate(1000, target) == "green"
    assert rate(40, target) == "amber"


def test_empty_figures_are_not_rated() -> None:
    assert rate(None, TARGET) is None


def test_protect_percentage_over_few_people() -> None:
    # B6 is over attendance records; with 8 records from 2 people it is still `*`.
    assert protect_percentage(8, 10, people=2) == SUPPRESSED
    assert protect_percentage(8, 10, people=8) == Decimal("80")


@pytest.mark.parametrize(
    ("value", "rating"),
    [
        (11, "red"),  # above the minimum: worse than it
        (10, "amber"),  # equal to minimum
        (6, "amber"),
        (5, "green"),  # equal to expected
        (3, "green"),
        (2, "stretch met"),  # equal to stretch
        (0, "stretch met"),  # none lost: the best there is (v1 rated this red)
    ],
)
def test_rate_lower_is_better(value: int, rating: str) -> None:
    target = {"minimum": 10, "expected": 5, "stretch": 2}
    assert rate(value, target, Direction.LOWER) == rating


@pytest.mark.parametrize("target", [None, {}])
def test_kpis_without_a_target_are_not_rated(target: dict[str, float] | None) -> None:
    assert rate(50, target) is None


# Periods ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("2026-03", Period(2026, 3)),
        (" 2026-03 ", Period(2026, 3)),  # surrounding spaces are forgiven
        ("2000-01", Period(2000, 1)),
        ("2026-12", Period(2026, 12)),
    ],
)
def test_period_parse(text: str, period: Period) -> None:
    assert Period.parse(text) == period


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "2026-3",  # month needs two digits
        "26-03",
        "2026/03",
        "2026-03-01",
        "March 2026",
        "2026-00",
        "2026-13",
        "1999-12",  # before the service's records
        "abcd-ef",
    ],
)
def test_period_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidPeriod):
        Period.parse(text)


def test_period_parse_refuses_none() -> None:
    with pytest.raises(InvalidPeriod):
        Period.parse(None)  # type: ignore[arg-type]


def test_invalid_period_is_a_value_error() -> None:
    assert issubclass(InvalidPeriod, ValueError)


@pytest.mark.parametrize(
    ("period", "end"),
    [
        (Period(2026, 1), date(2026, 1, 31)),
        (Period(2026, 2), date(2026, 2, 28)),  # not a leap year
        (Period(2024, 2), date(2024, 2, 29)),  # leap year
        (Period(2028, 2), date(2028, 2, 29)),
        (Period(2000, 2), date(2000, 2, 29)),  # divisible by 400: leap
        (Period(2100, 2), date(2100, 2, 28)),  # divisible by 100, not 400: not leap
        (Period(2026, 3), date(2026, 3, 31)),
        (Period(2026, 4), date(2026, 4, 30)),
        (Period(2026, 6), date(2026, 6, 30)),
        (Period(2026, 9), date(2026, 9, 30)),
        (Period(2026, 11), date(2026, 11, 30)),
        (Period(2026, 12), date(2026, 12, 31)),
    ],
)
def test_period_month_ends(period: Period, end: date) -> None:
    assert period.start == date(period.year, period.month, 1)
    assert period.end == end


def test_period_neighbours_and_keys() -> None:
    assert Period(2026, 1).previous() == Period(2025, 12)
    assert Period(2025, 12).next() == Period(2026, 1)
    assert Period(2026, 3).key == "2026-03"
    assert str(Period(2026, 3)) == "2026-03"
    assert Period.containing(date(2026, 3, 31)) == Period(2026, 3)
    assert Period.containing(date(2026, 4, 1)) == Period(2026, 4)
    # A month is finished only once its last day has passed.
    assert not Period(2026, 3).is_finished(date(2026, 3, 31))
    assert Period(2026, 3).is_finished(date(2026, 4, 1))


# Properties -------------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=10**7)


@given(counts)
def test_rounded_counts_are_multiples_of_five_within_two(count: int) -> None:
    shown = round_count(count)
    if count == 0:
        assert shown == 0
    elif count <= 7:
        assert shown == SUPPRESSED
    else:
        assert isinstance(shown, int)
        assert shown % 5 == 0
        assert abs(shown - count) <= 2


@given(counts)
def test_rounded_counts_never_reveal_one_to_seven(count: int) -> None:
    shown = round_count(count)
    # Only 0 itself may be shown as 0; nothing shown is 1-7 (the smallest number shown is 10).
    assert shown == SUPPRESSED or shown == 0 or shown >= 10
    assert (shown == 0) == (count == 0)


@given(counts, counts)
def test_rounding_is_monotone(a: int, b: int) -> None:
    low, high = sorted((a, b))
    if low > 7:
        assert round_count(low) <= round_count(high)  # type: ignore[operator]


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
)
def test_protected_percentages(numerator: int, denominator: int) -> None:
    numerator = min(numerator, denominator)  # a share of the denominator
    shown = protect_percentage(numerator, denominator)
    if denominator == 0:
        assert shown is None
    elif denominator <= 7 or 1 <= numerator <= 7:
        assert shown == SUPPRESSED
    else:
        assert shown == percentage(numerator, denominator, places=0)
        assert isinstance(shown, Decimal) and shown == shown.to_integral_value()
        # Never more than half a point from the true share.
        assert abs(shown - Decimal(numerator) * 100 / denominator) <= Decimal("0.5")


@given(st.decimals(min_value=-100, max_value=1000, places=2), st.integers(0, 10**6))
def test_statistics_over_one_to_seven_people_are_never_shown(value: Decimal, people: int) -> None:
    shown = protect_statistic(value, people)
    if people == 0:
        assert shown is None
    elif people <= 7:
        assert shown == SUPPRESSED
    else:
        assert shown == value


RANK = {"red": 0, "amber": 1, "green": 2, "stretch met": 3}


@given(
    st.decimals(min_value=0, max_value=200, places=1),
    st.decimals(min_value=0, max_value=200, places=1),
    st.lists(st.integers(min_value=0, max_value=200), min_size=3, max_size=3),
)
def test_ratings_are_monotone(a: Decimal, b: Decimal, levels: list[int]) -> None:
    minimum, expected, stretch = sorted(levels)
    target = {"minimum": minimum, "expected": expected, "stretch": stretch}
    low, high = sorted((a, b))
    assert RANK[rate(low, target)] <= RANK[rate(high, target)]  # type: ignore[index]
    # The rating agrees with the definition.
    rating = rate(high, target)
    if high < minimum:
        assert rating == "red"
    elif high < expected:
        assert rating == "amber"
    elif high < stretch:
        assert rating == "green"
    else:
        assert rating == "stretch met"


@given(st.integers(min_value=2000, max_value=2999), st.integers(min_value=1, max_value=12))
def test_period_round_trip_and_month_end(year: int, month: int) -> None:
    period = Period(year, month)
    assert Period.parse(period.key) == period
    assert (period.end + timedelta(days=1)) == period.next().start
    assert Period.containing(period.end) == period
