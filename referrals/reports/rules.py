"""Pure rules for commissioner-facing figures: NHS Digital's small-number rule and RAG ratings.

KPI specification v2, "Small numbers":

- a count of 0 stays 0; 1 to 7 is shown as `*`; any other count is rounded to the nearest 5;
- a mean, median or percentage computed over 1 to 7 people is shown as `*`;
- a percentage is computed from the true counts, shown to a whole per cent, and is `*` when its
  numerator or its denominator is 1 to 7;
- secondary suppression: within a breakdown, and between a total and its breakdown, no
  suppressed cell may be recoverable from the published cells (`protect_breakdowns`).

Ratings are made from true figures only (`rate`), never from what is published.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

SUPPRESSED = "*"
SMALL_MAX = 7

Rating = Literal["red", "amber", "green", "stretch met"]
Shown = int | str  # a published count: a number or "*"


class Kind(enum.StrEnum):
    COUNT = "count"  # a count of people or referrals: the small-number rule applies
    SESSIONS = "sessions"  # a count of sessions (B4): not people, shown as it is
    MONEY = "money"  # pounds (E1): shown as it is
    COST = "cost"  # pounds per person, attendance or completion: `*` over 1-7 of them
    MEAN = "mean"
    MEDIAN = "median"
    PERCENT = "percent"


class Direction(enum.StrEnum):
    HIGHER = "higher"  # higher is better
    LOWER = "lower"  # lower is better: target levels run downwards


def is_small(count: int | None) -> bool:
    return count is not None and 1 <= count <= SMALL_MAX


def round_count(count: int) -> int | str:
    """Protect a count: 0 stays 0, 1–7 becomes `*`, others go to the nearest 5."""
    if count < 0:
        raise ValueError("counts cannot be negative")
    if count == 0:
        return 0
    if count <= SMALL_MAX:
        return SUPPRESSED
    return int((Decimal(count) / 5).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 5)


def protect_statistic(value: Decimal | None, people: int) -> Decimal | str | None:
    """A mean, median or cost per head over 1–7 people is `*`; over none it is empty."""
    if value is None or people == 0:
        return None
    if people <= SMALL_MAX:
        return SUPPRESSED
    return value


def percentage(numerator: int, denominator: int, places: int = 1) -> Decimal | None:
    if denominator == 0:
        return None
    exponent = Decimal(1).scaleb(-places)
    return (Decimal(numerator) * 100 / Decimal(denominator)).quantize(
        exponent, rounding=ROUND_HALF_UP
    )


def protect_percentage(
    numerator: int, denominator: int, people: int | None = None
) -> Decimal | str | None:
    """A percentage for commissioners: from the true counts, to a whole per cent.

    `*` when the numerator or the denominator is 1–7, or when it is over 1–7 people
    (`people`, for a percentage whose denominator is not a count of people, such as B6's
    attendance records).
    """
    if denominator == 0:
        return None
    if is_small(numerator) or is_small(denominator) or is_small(people):
        return SUPPRESSED
    return percentage(numerator, denominator, places=0)


def rate(
    value: Decimal | int | None,
    target: Mapping[str, float] | None,
    direction: Direction = Direction.HIGHER,
) -> Rating | None:
    """The rating of a TRUE figure against minimum, expected and stretch levels.

    Higher is better: short of minimum red, minimum to short of expected amber, expected or
    better green, stretch or better "stretch met". Lower is better: the same with the levels
    running downwards. An empty figure, or a KPI with no target, is not rated.
    """
    if not target or value is None:
        return None
    number = Decimal(str(value))
    sign = 1 if direction is Direction.HIGHER else -1

    def reaches(level: str) -> bool:
        return level in target and sign * number >= sign * Decimal(str(target[level]))

    if reaches("stretch"):
        return "stretch met"
    if reaches("expected"):
        return "green"
    if reaches("minimum"):
        return "amber"
    return "red"


# Secondary suppression -----------------------------------------------------------------------

UNBOUNDED = 10**12


def stands_for(shown: Shown, *, star: tuple[int, int]) -> tuple[int, int]:
    """The interval of true counts a published count stands for.

    0 is exactly 0; a rounded count r is r-2 to r+2 (10 stands for 8 to 12); `*` stands for
    `star`, which depends on what a reader assumes (see `exposed_cells`).
    """
    if shown == SUPPRESSED:
        return star
    assert isinstance(shown, int)
    if shown == 0:
        return (0, 0)
    return (shown - 2, shown + 2)


# A reader who takes every `*` for a primary suppression reads it as 1 to 7; one who knows that
# secondary suppression hides larger counts (and, as a last resort, zeros) reads it as anything.
READINGS: tuple[tuple[int, int], ...] = ((1, SMALL_MAX), (0, UNBOUNDED))


@dataclass(frozen=True)
class Family:
    """A total and its breakdowns: the cells of each breakdown add up to the total.

    `total_exact` says the total can be worked out exactly from other published figures (B1
    from E1 and E2), so a reader knows it and not just its rounded interval.
    """

    total: Hashable
    breakdowns: tuple[tuple[Hashable, ...], ...]
    total_exact: bool = False


def _bounds(
    family: Family,
    shown: Mapping[Hashable, Shown],
    true: Mapping[Hashable, int],
    star: tuple[int, int],
) -> dict[Hashable, tuple[int, int]] | None:
    """Each cell's feasible interval under one reading of `*`; None when the reading is
    inconsistent with the published cells.

    The cells of one breakdown are boxes summing to the total, so each cell's feasible values
    form an interval: the projections below are exact, not approximations.
    """
    boxes = {key: stands_for(shown[key], star=star) for group in family.breakdowns for key in group}
    total_box = (
        (true[family.total], true[family.total])
        if family.total_exact
        else stands_for(shown[family.total], star=star)
    )
    low, high = total_box
    for group in family.breakdowns:
        low = max(low, sum(boxes[k][0] for k in group))
        high = min(high, sum(boxes[k][1] for k in group))
    if low > high:
        return None
    result = {family.total: (low, high)}
    for group in family.breakdowns:
        group_low = sum(boxes[k][0] for k in group)
        group_high = sum(boxes[k][1] for k in group)
        for key in group:
            cell_low, cell_high = boxes[key]
            result[key] = (
                max(cell_low, low - (group_high - cell_high)),
                min(cell_high, high - (group_low - cell_low)),
            )
    return result


def exposed_cells(
    family: Family, shown: Mapping[Hashable, Shown], true: Mapping[Hashable, int]
) -> list[Hashable]:
    """Suppressed cells whose value a reader could work out exactly, under either reading."""
    exposed: list[Hashable] = []
    for star in READINGS:
        bounds = _bounds(family, shown, true, star)
        if bounds is None:
            continue
        for key, (low, high) in bounds.items():
            if shown[key] == SUPPRESSED and low == high and key not in exposed:
                exposed.append(key)
    return exposed


def protect_breakdowns(
    families: Sequence[Family], true: Mapping[Hashable, int], shown: Mapping[Hashable, Shown]
) -> tuple[dict[Hashable, Shown], set[Hashable]]:
    """Secondary suppression: while a suppressed cell is recoverable, suppress the smallest
    other cell of its breakdown (or the total), non-zero cells first.

    Returns the published cells and the keys suppressed by this step.
    """
    published = dict(shown)
    secondary: set[Hashable] = set()
    for family in families:
        while True:
            exposed = exposed_cells(family, published, true)
            if not exposed:
                break
            candidates: list[Hashable] = []
            for key in exposed:
                if key == family.total:
                    candidates += [k for group in family.breakdowns for k in group]
                else:
                    group = next(g for g in family.breakdowns if key in g)
                    candidates += [*group, family.total]
            open_cells = [k for k in candidates if published[k] != SUPPRESSED]
            if not open_cells:
                break  # everything is already withheld: nothing more to hide
            # Smallest first; zeros only as a last resort (suppressing one hides less).
            choice = min(open_cells, key=lambda k: (true[k] == 0, true[k]))
            published[choice] = SUPPRESSED
            secondary.add(choice)
    return published, secondary
