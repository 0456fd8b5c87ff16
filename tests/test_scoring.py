"""Wellbeing scoring: the SWEMWBS conversion table, WEMWBS totals, bad answers, change, labels."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.outcomes.scoring import (
    MEANINGFUL_CHANGE,
    SWEMWBS_METRIC,
    Instrument,
    InvalidScores,
    Score,
    Timepoint,
    change_category,
    item_labels,
    score,
)

# The published SWEMWBS raw -> metric conversion, written out independently of the module's table.
EXPECTED_SWEMWBS = [
    (7, "7.00"), (8, "9.51"), (9, "11.25"), (10, "12.40"), (11, "13.33"), (12, "14.08"),
    (13, "14.75"), (14, "15.32"), (15, "15.84"), (16, "16.36"), (17, "16.88"), (18, "17.43"),
    (19, "17.98"), (20, "18.59"), (21, "19.25"), (22, "19.98"), (23, "20.73"), (24, "21.54"),
    (25, "22.35"), (26, "23.21"), (27, "24.11"), (28, "25.03"), (29, "26.02"), (30, "27.03"),
    (31, "28.13"), (32, "29.31"), (33, "30.70"), (34, "32.55"), (35, "35.00"),
]  # fmt: skip

answers = st.integers(min_value=1, max_value=5)
swemwbs_answers = st.lists(answers, min_size=7, max_size=7)
wemwbs_answers = st.lists(answers, min_size=14, max_size=14)


def answers_totalling(raw: int, count: int) -> list[int]:
    """A valid set of answers with the given total: as many 5s as fit, then the remainder."""
    extra = raw - count  # points above all-ones
    items = [1] * count
    for index in range(count):
        step = min(4, extra)
        items[index] += step
        extra -= step
    assert sum(items) == raw
    return items


# Instruments and timepoints


def test_instruments() -> None:
    assert Instrument("SWEMWBS") is Instrument.SWEMWBS
    assert Instrument("WEMWBS") is Instrument.WEMWBS
    assert (Instrument.SWEMWBS.item_count, Instrument.WEMWBS.item_count) == (7, 14)
    assert (Instrument.SWEMWBS.min_raw, Instrument.SWEMWBS.max_raw) == (7, 35)
    assert (Instrument.WEMWBS.min_raw, Instrument.WEMWBS.max_raw) == (14, 70)
    assert Instrument.SWEMWBS.label == "Short Warwick-Edinburgh Mental Wellbeing Scale (SWEMWBS)"
    assert Instrument.WEMWBS.label == "Warwick-Edinburgh Mental Wellbeing Scale (WEMWBS)"


def test_timepoints() -> None:
    assert [t.value for t in Timepoint] == ["baseline", "end", "follow_up"]
    assert [t.label for t in Timepoint] == [
        "Baseline (start of course)",
        "End of course",
        "Follow-up (about 3 months after)",
    ]


# SWEMWBS


def test_conversion_table_covers_exactly_the_raw_range() -> None:
    assert sorted(SWEMWBS_METRIC) == list(range(7, 36))
    assert {raw: str(metric) for raw, metric in SWEMWBS_METRIC.items()} == dict(EXPECTED_SWEMWBS)


def test_conversion_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        SWEMWBS_METRIC[7] = Decimal("8.00")  # type: ignore[index]


@pytest.mark.parametrize(("raw", "metric"), EXPECTED_SWEMWBS)
def test_swemwbs_every_raw_total_converts(raw: int, metric: str) -> None:
    result = score(Instrument.SWEMWBS, answers_totalling(raw, 7))
    assert result == Score(raw=raw, metric=Decimal(metric))
    assert str(result.metric) == metric  # exact, two decimals


@given(swemwbs_answers)
def test_swemwbs_metric_within_range(items: list[int]) -> None:
    result = score(Instrument.SWEMWBS, items)
    assert result.raw == sum(items)
    assert Decimal(7) <= result.metric <= Decimal(35)
    assert result.metric == result.metric.quantize(Decimal("0.01"))


@given(swemwbs_answers, swemwbs_answers)
def test_swemwbs_metric_monotonic_in_raw_total(first: list[int], second: list[int]) -> None:
    a, b = score(Instrument.SWEMWBS, first), score(Instrument.SWEMWBS, second)
    if a.raw < b.raw:
        assert a.metric < b.metric
    elif a.raw == b.raw:
        assert a.metric == b.metric
    else:
        assert a.metric > b.metric


# WEMWBS


@pytest.mark.parametrize(("items", "raw"), [([1] * 14, 14), ([5] * 14, 70), ([3] * 14, 42)])
def test_wemwbs_bounds_without_conversion(items: list[int], raw: int) -> None:
    assert score(Instrument.WEMWBS, items) == Score(raw=raw, metric=Decimal(raw))


@given(wemwbs_answers)
def test_wemwbs_raw_is_the_sum(items: list[int]) -> None:
    result = score(Instrument.WEMWBS, items)
    assert result.raw == sum(items)
    assert result.metric == result.raw
    assert 14 <= result.raw <= 70


# Bad answers


@pytest.mark.parametrize(
    ("instrument", "items", "message"),
    [
        (Instrument.SWEMWBS, [3] * 6, "SWEMWBS needs 7 answers; 6 given"),
        (Instrument.SWEMWBS, [3] * 8, "SWEMWBS needs 7 answers; 8 given"),
        (Instrument.SWEMWBS, [], "SWEMWBS needs 7 answers; 0 given"),
        (Instrument.SWEMWBS, [3] * 14, "SWEMWBS needs 7 answers; 14 given"),
        (Instrument.WEMWBS, [3] * 7, "WEMWBS needs 14 answers; 7 given"),
        (Instrument.WEMWBS, [3] * 15, "WEMWBS needs 14 answers; 15 given"),
    ],
)
def test_wrong_number_of_answers(instrument: Instrument, items: list[int], message: str) -> None:
    with pytest.raises(InvalidScores) as caught:
        score(instrument, items)
    assert caught.value.errors == {"items": [message]}
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "bad",
    [0, 6, -1, 100, True, False, 3.0, 2.5, "3", "", Decimal(3), [3], object()],
    ids=repr,
)
@pytest.mark.parametrize("instrument", list(Instrument))
def test_each_kind_of_bad_answer(instrument: Instrument, bad: object) -> None:
    items: list[object] = [3] * instrument.item_count
    items[3] = bad
    with pytest.raises(InvalidScores) as caught:
        score(instrument, items)  # type: ignore[arg-type]
    assert caught.value.errors == {"items.3": ["Item 4 must be a whole number from 1 to 5"]}
    assert isinstance(caught.value, ValueError)


def test_missing_answer() -> None:
    with pytest.raises(InvalidScores) as caught:
        score(Instrument.SWEMWBS, [3, 3, None, 3, 3, 3, 3])  # type: ignore[list-item]
    assert caught.value.errors == {"items.2": ["Item 3 needs an answer"]}


def test_every_bad_answer_and_the_count_are_reported_together() -> None:
    with pytest.raises(InvalidScores) as caught:
        score(Instrument.SWEMWBS, [0, 3, 3, 3, 3, 9])
    assert caught.value.errors == {
        "items": ["SWEMWBS needs 7 answers; 6 given"],
        "items.0": ["Item 1 must be a whole number from 1 to 5"],
        "items.5": ["Item 6 must be a whole number from 1 to 5"],
    }


@pytest.mark.parametrize("items", ["3333333", b"\x03" * 7, None, 21, {1: 3}], ids=repr)
def test_answers_that_are_not_a_list(items: object) -> None:
    with pytest.raises(InvalidScores) as caught:
        score(Instrument.SWEMWBS, items)  # type: ignore[arg-type]
    assert caught.value.errors == {"items": ["Answer each of the 7 SWEMWBS items"]}


@given(
    st.lists(answers, min_size=7, max_size=7),
    st.integers(min_value=0, max_value=6),
    st.one_of(
        st.integers().filter(lambda n: not 1 <= n <= 5),
        st.floats(),
        st.text(),
        st.booleans(),
    ),
)
def test_any_bad_answer_is_named_by_number(items: list[object], index: int, bad: object) -> None:
    items = list(items)
    items[index] = bad
    with pytest.raises(InvalidScores) as caught:
        score(Instrument.SWEMWBS, items)  # type: ignore[arg-type]
    assert list(caught.value.errors) == [f"items.{index}"]
    assert caught.value.errors[f"items.{index}"][0].startswith(f"Item {index + 1} ")


# Change categories (KPI C5/C6)


def test_meaningful_change_is_three() -> None:
    assert Decimal(3) == MEANINGFUL_CHANGE


@pytest.mark.parametrize(
    ("baseline", "end", "category"),
    [
        ("20.00", "23.00", "improved"),
        ("20.00", "22.99", "no_change"),
        ("20.00", "17.00", "worsened"),
        ("20.00", "17.01", "no_change"),
        ("20.00", "20.00", "no_change"),
        ("7.00", "35.00", "improved"),
        ("35.00", "7.00", "worsened"),
        ("19.25", "22.35", "improved"),  # raw 21 -> 25 is 3.10
        ("17.98", "19.98", "no_change"),  # raw 19 -> 22 is 2.00
        ("14.08", "17.08", "improved"),
        ("17.08", "14.08", "worsened"),
        ("10", "12.99", "no_change"),
        ("10", "13", "improved"),
    ],
)
def test_change_category_boundaries(baseline: str, end: str, category: str) -> None:
    assert change_category(Decimal(baseline), Decimal(end)) == category


metric_scores = st.decimals(min_value=7, max_value=70, places=2)


@given(metric_scores, metric_scores)
def test_change_category_is_symmetric(baseline: Decimal, end: Decimal) -> None:
    forward, backward = change_category(baseline, end), change_category(end, baseline)
    mirror = {"improved": "worsened", "worsened": "improved", "no_change": "no_change"}
    assert backward == mirror[forward]
    assert (forward == "no_change") == (abs(end - baseline) < 3)


# Item labels: wording is licensed per organisation, never shipped


def test_item_labels_default_to_numbers() -> None:
    assert item_labels(Instrument.SWEMWBS, None) == [f"Item {n}" for n in range(1, 8)]
    assert item_labels(Instrument.WEMWBS, None) == [f"Item {n}" for n in range(1, 15)]
    assert item_labels(Instrument.SWEMWBS, {}) == [f"Item {n}" for n in range(1, 8)]


def test_item_labels_use_complete_licensed_wording() -> None:
    wording = [f"Licensed statement {n}" for n in range(1, 8)]
    assert item_labels(Instrument.SWEMWBS, {"SWEMWBS": wording}) == wording
    assert item_labels(Instrument.SWEMWBS, {"SWEMWBS": tuple(wording)}) == wording
    # Wording for another instrument is not borrowed.
    assert item_labels(Instrument.WEMWBS, {"SWEMWBS": wording}) == [
        f"Item {n}" for n in range(1, 15)
    ]


@pytest.mark.parametrize(
    "wording",
    [
        [f"Statement {n}" for n in range(1, 7)],  # too few
        [f"Statement {n}" for n in range(1, 9)],  # too many
        [f"Statement {n}" for n in range(1, 7)] + [""],  # a blank one
        [f"Statement {n}" for n in range(1, 7)] + [None],  # not a string
        "Seven!!",  # a string is not a list of statements
    ],
    ids=["too-few", "too-many", "blank", "none", "string"],
)
def test_item_labels_ignore_incomplete_wording(wording: object) -> None:
    labels = item_labels(Instrument.SWEMWBS, {"SWEMWBS": wording})  # type: ignore[dict-item]
    assert labels == [f"Item {n}" for n in range(1, 8)]


def test_the_timepoint_follows_from_where_the_person_is_on_the_course():
    from datetime import date, timedelta

    from referrals.outcomes.timepoints import CourseDays, timepoint_for, timepoint_problem

    sessions = [date(2026, 3, 3) + timedelta(weeks=n) for n in range(10)]
    days = CourseDays(sessions, attended=sessions[:3])
    assert timepoint_for(sessions[0], days) is Timepoint.BASELINE
    assert timepoint_for(sessions[3], days) is None  # session 4 of 10: mid-course
    assert "session 4 of 10" in (timepoint_problem(Timepoint.END, sessions[3], days) or "")
    assert timepoint_for(sessions[-1], days) is Timepoint.END
    assert timepoint_for(sessions[-1] + timedelta(weeks=7), days) is Timepoint.END
    assert timepoint_for(sessions[-1] + timedelta(weeks=8), days) is Timepoint.FOLLOW_UP
    assert timepoint_problem(Timepoint.FOLLOW_UP, sessions[-1] + timedelta(weeks=13), days) is None
    # Someone whose first session was the fifth has their baseline then.
    joined_late = CourseDays(sessions, attended=sessions[4:])
    assert timepoint_for(sessions[4], joined_late) is Timepoint.BASELINE
    assert timepoint_problem(Timepoint.BASELINE, sessions[5], joined_late) is not None
