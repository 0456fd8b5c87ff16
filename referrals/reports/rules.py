"""Pure rules for commissioner-facing figures: NHS Digital's small-number rule and RAG ratings.

- A count of 0 stays 0; 1 to 7 is shown as `*`; any other count is rounded to the nearest 5.
- A mean, median or percentage computed over 1 to 7 people is shown as `*`.
- Percentages are recomputed from the rounded counts.
"""

from __future__ import annotations

import enum
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

SUPPRESSED = "*"
SMALL_MAX = 7

Rating = Literal["red", "amber", "green", "stretch met"]


class Kind(enum.StrEnum):
    COUNT = "count"
    MEAN = "mean"
    MEDIAN = "median"
    PERCENT = "percent"


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
    """A mean or median over 1–7 people is `*`; over none it is empty."""
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
    numerator: int, denominator: int, people: int | None = None, places: int = 1
) -> Decimal | str | None:
    """A percentage for commissioners: `*` over 1–7 people, else from the rounded counts.

    `people` is how many people the percentage is over (default: the denominator). A
    numerator of 1–7 is also `*`, since it could be worked back from the percentage.
    """
    if denominator == 0:
        return None
    if (denominator if people is None else people) <= SMALL_MAX:
        return SUPPRESSED
    rounded_numerator = round_count(numerator)
    rounded_denominator = round_count(denominator)
    if rounded_numerator == SUPPRESSED or rounded_denominator == SUPPRESSED:
        return SUPPRESSED
    assert isinstance(rounded_numerator, int) and isinstance(rounded_denominator, int)
    return percentage(rounded_numerator, rounded_denominator, places)


def rate(value: Decimal | int | str | None, target: dict[str, float] | None) -> Rating | None:
    """Red below minimum, amber to below expected, green from expected, stretch met at stretch.

    Suppressed or empty figures, and KPIs with no target, are not rated.
    """
    if not target or value is None or value in (SUPPRESSED, ""):
        return None
    number = Decimal(str(value))
    if "stretch" in target and number >= Decimal(str(target["stretch"])):
        return "stretch met"
    if number >= Decimal(str(target["expected"])):
        return "green"
    if number >= Decimal(str(target["minimum"])):
        return "amber"
    return "red"
