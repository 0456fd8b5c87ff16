"""Wellbeing questionnaire scoring: instruments, timepoints, totals and change categories.

Pure functions of their inputs. SWEMWBS raw totals are converted to metric scores with the
published table (KPI spec, section C); WEMWBS totals are used as they are. The scales' item
wording is licensed to each organisation, so it is never shipped here: items are referred to by
number unless the instance configuration supplies the wording.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

ITEM_MIN = 1
ITEM_MAX = 5


class Instrument(enum.StrEnum):
    SWEMWBS = "SWEMWBS"
    WEMWBS = "WEMWBS"

    @property
    def item_count(self) -> int:
        return _ITEM_COUNTS[self]

    @property
    def label(self) -> str:
        return _INSTRUMENT_LABELS[self]

    @property
    def min_raw(self) -> int:
        return self.item_count * ITEM_MIN

    @property
    def max_raw(self) -> int:
        return self.item_count * ITEM_MAX


_ITEM_COUNTS = {Instrument.SWEMWBS: 7, Instrument.WEMWBS: 14}
_INSTRUMENT_LABELS = {
    Instrument.SWEMWBS: "Short Warwick-Edinburgh Mental Wellbeing Scale (SWEMWBS)",
    Instrument.WEMWBS: "Warwick-Edinburgh Mental Wellbeing Scale (WEMWBS)",
}


class Timepoint(enum.StrEnum):
    """When an assessment was taken, relative to the participant's course."""

    BASELINE = "baseline"
    END = "end"
    FOLLOW_UP = "follow_up"

    @property
    def label(self) -> str:
        return _TIMEPOINT_LABELS[self]


_TIMEPOINT_LABELS = {
    Timepoint.BASELINE: "Baseline (start of course)",
    Timepoint.END: "End of course",
    Timepoint.FOLLOW_UP: "Follow-up (about 3 months after)",
}

# SWEMWBS raw total -> metric score, as published (KPI spec, section C).
SWEMWBS_METRIC: Mapping[int, Decimal] = MappingProxyType(
    {
        raw: Decimal(metric)
        for raw, metric in {
            7: "7.00", 8: "9.51", 9: "11.25", 10: "12.40", 11: "13.33", 12: "14.08",
            13: "14.75", 14: "15.32", 15: "15.84", 16: "16.36", 17: "16.88", 18: "17.43",
            19: "17.98", 20: "18.59", 21: "19.25", 22: "19.98", 23: "20.73", 24: "21.54",
            25: "22.35", 26: "23.21", 27: "24.11", 28: "25.03", 29: "26.02", 30: "27.03",
            31: "28.13", 32: "29.31", 33: "30.70", 34: "32.55", 35: "35.00",
        }.items()
    }
)  # fmt: skip

MEANINGFUL_CHANGE = Decimal(3)

# SWEMWBS's seven items are these WEMWBS items (numbered from 1), so a WEMWBS questionnaire
# also yields a SWEMWBS score (KPI spec v2, section C).
SWEMWBS_ITEMS_IN_WEMWBS: tuple[int, ...] = (1, 2, 3, 6, 7, 9, 11)

ChangeCategory = Literal["improved", "worsened", "no_change"]


@dataclass(frozen=True)
class Score:
    """A questionnaire's raw total and the metric score the KPIs use."""

    raw: int
    metric: Decimal


class InvalidScores(ValueError):
    """Answers that cannot be scored; `errors` maps each field to messages fit to show a person."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(message for messages in errors.values() for message in messages))


def _is_valid_answer(value: object) -> bool:
    # bool is an int subclass, but True is not an answer of 1.
    return isinstance(value, int) and not isinstance(value, bool) and ITEM_MIN <= value <= ITEM_MAX


def validate_items(instrument: Instrument, items: Sequence[int]) -> dict[str, list[str]]:
    """Field errors for a set of answers, keyed "items" or "items.<index>"; empty when valid."""
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        return {"items": [f"Answer each of the {instrument.item_count} {instrument} items"]}
    errors: dict[str, list[str]] = {}
    if len(items) != instrument.item_count:
        errors["items"] = [
            f"{instrument} needs {instrument.item_count} answers; {len(items)} given"
        ]
    for index, value in enumerate(items):
        if value is None:
            errors[f"items.{index}"] = [f"Item {index + 1} needs an answer"]
        elif not _is_valid_answer(value):
            errors[f"items.{index}"] = [
                f"Item {index + 1} must be a whole number from {ITEM_MIN} to {ITEM_MAX}"
            ]
    return errors


def score(instrument: Instrument, items: Sequence[int]) -> Score:
    """Score one completed questionnaire, or raise `InvalidScores`."""
    errors = validate_items(instrument, items)
    if errors:
        raise InvalidScores(errors)
    raw = sum(items)
    if instrument is Instrument.SWEMWBS:
        return Score(raw=raw, metric=SWEMWBS_METRIC[raw])
    return Score(raw=raw, metric=Decimal(raw))


def swemwbs_from_wemwbs(items: Sequence[int]) -> Score:
    """The SWEMWBS score within a completed WEMWBS questionnaire, or raise `InvalidScores`."""
    errors = validate_items(Instrument.WEMWBS, items)
    if errors:
        raise InvalidScores(errors)
    return score(Instrument.SWEMWBS, [items[number - 1] for number in SWEMWBS_ITEMS_IN_WEMWBS])


def change_category(baseline: Decimal, end: Decimal) -> ChangeCategory:
    """KPI C5/C6: a metric score that rose by 3 or more improved; fell by 3 or more worsened."""
    change = end - baseline
    if change >= MEANINGFUL_CHANGE:
        return "improved"
    if change <= -MEANINGFUL_CHANGE:
        return "worsened"
    return "no_change"


def item_labels(
    instrument: Instrument, licensed_wording: Mapping[str, Sequence[str]] | None
) -> list[str]:
    """The instance's licensed item wording when it is complete, else "Item 1" … "Item N"."""
    wording = (licensed_wording or {}).get(instrument.value)
    if (
        isinstance(wording, Sequence)
        and not isinstance(wording, str)
        and len(wording) == instrument.item_count
        and all(isinstance(text, str) and text.strip() for text in wording)
    ):
        return [text.strip() for text in wording]
    return [f"Item {number}" for number in range(1, instrument.item_count + 1)]
