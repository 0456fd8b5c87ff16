"""KPI targets: which KPIs take them, in which direction, and the one rule that checks them.

KPI specification v2, "Targets": a contract may set, per KPI and span (the month, the year to
date), a minimum, expected and stretch target. Each KPI has a direction; for a lower-is-better
KPI the levels run downwards. KPIs that are not rated (C2, C3, E1, section D) take no target,
and a count target from 1 to 7 is refused, so that a rating never narrows a suppressed cell.

A contract stores its targets as
`{"B1": {"month": {"minimum": 30, "expected": 35, "stretch": 45}, "year_to_date": {...}}}`.
`check_targets` is the rule the admin form, the API and the contract service all call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from referrals.reports.rules import SMALL_MAX, Direction

MINIMUM, EXPECTED, STRETCH = "minimum", "expected", "stretch"
TARGET_LEVELS: tuple[str, ...] = (MINIMUM, EXPECTED, STRETCH)
MONTH, YEAR_TO_DATE = "month", "year_to_date"
TARGET_SPANS: tuple[str, ...] = (MONTH, YEAR_TO_DATE)
SPAN_LABELS = {MONTH: "month", YEAR_TO_DATE: "year to date"}
TARGET_MAX = 1_000_000_000

Targets = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class TargetableKpi:
    code: str
    name: str
    unit: str
    direction: Direction = Direction.HIGHER
    # Counts take whole numbers; rates, means and money up to two decimal places.
    whole_number: bool = True
    # A count of people or referrals, published under the small-number rule.
    people: bool = False
    lowest: float = 0
    highest: float = TARGET_MAX
    spans: tuple[str, ...] = TARGET_SPANS

    @property
    def percent(self) -> bool:
        return self.unit == "percent"


_UP, _DOWN = Direction.HIGHER, Direction.LOWER
_CHANGE = 28  # SWEMWBS metric scores run from 7 to 35
_MONTH_ONLY = (MONTH,)  # section A is reported for the month only

TARGETABLE_KPIS: tuple[TargetableKpi, ...] = (
    TargetableKpi("A1", "Referrals received", "referrals", people=True, spans=_MONTH_ONLY),
    TargetableKpi(
        "A2", "Referrals closed without starting", "referrals", _DOWN, people=True,
        spans=_MONTH_ONLY,
    ),
    TargetableKpi(
        "A3", "Open referrals waiting", "referrals", _DOWN, people=True, spans=_MONTH_ONLY
    ),
    TargetableKpi(
        "B1", "Number of people supported to access arts or cultural groups/activities",
        "people", people=True,
    ),
    TargetableKpi("B2", "New starters", "people", people=True),
    TargetableKpi("B3", "Median wait to start (days)", "days", _DOWN, whole_number=False),
    TargetableKpi("B4", "Sessions delivered", "sessions"),
    TargetableKpi("B5", "Attendances", "attendances", people=True),
    TargetableKpi("B6", "Attendance rate (%)", "percent", whole_number=False, highest=100),
    TargetableKpi("B7", "Completions", "people", people=True),
    TargetableKpi(
        "C0", "Questionnaire completeness (%)", "percent", whole_number=False, highest=100
    ),
    TargetableKpi("C1", "Paired outcomes", "people", people=True),
    TargetableKpi(
        "C4", "Mean change", "SWEMWBS metric points", whole_number=False, lowest=-_CHANGE,
        highest=_CHANGE,
    ),
    TargetableKpi("C5", "Improved (%)", "percent", whole_number=False, highest=100),
    TargetableKpi("C6", "Worsened (%)", "percent", _DOWN, whole_number=False, highest=100),
    TargetableKpi(
        "C7", "Session mood uplift", "mood points", whole_number=False, lowest=-10, highest=10
    ),
    TargetableKpi("C8", "Follow-up pairs", "people", people=True),
    TargetableKpi(
        "C9", "Mean change at follow-up", "SWEMWBS metric points", whole_number=False,
        lowest=-_CHANGE, highest=_CHANGE,
    ),
    TargetableKpi("E2", "Cost per person supported (£)", "pounds", _DOWN, whole_number=False),
    TargetableKpi("E3", "Cost per attendance (£)", "pounds", _DOWN, whole_number=False),
    TargetableKpi("E4", "Cost per completion (£)", "pounds", _DOWN, whole_number=False),
)  # fmt: skip

TARGETABLE_BY_CODE: dict[str, TargetableKpi] = {kpi.code: kpi for kpi in TARGETABLE_KPIS}
DIRECTIONS: dict[str, Direction] = {kpi.code: kpi.direction for kpi in TARGETABLE_KPIS}
UNRATED_CODES = ("C2", "C3", "E1", "D1", "D2", "D3")


class InvalidTargets(ValueError):
    """Targets that break the rule; `errors` maps "B1.month.minimum"-style keys to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(m for messages in errors.values() for m in messages))


def targets_schema() -> dict[str, Any]:
    """What `check_targets` accepts, as JSON Schema, but for the order of the levels, which
    JSON Schema cannot say."""

    def level(kpi: TargetableKpi) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "integer" if kpi.whole_number else "number",
            "minimum": kpi.lowest,
            "maximum": kpi.highest,
        }
        if kpi.people:  # a count of 1 to SMALL_MAX would rate a suppressed cell
            schema["not"] = {"minimum": 1, "maximum": SMALL_MAX}
        return schema

    def levels(kpi: TargetableKpi) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": list(TARGET_LEVELS),
            "properties": {name: level(kpi) for name in TARGET_LEVELS},
        }

    return {
        "type": "object",
        "additionalProperties": False,
        "description": (
            "KPI code to span to levels: minimum <= expected <= stretch, or downwards where "
            "lower is better; percentages 0 to 100; a count of people never 1 to "
            f"{SMALL_MAX}"
        ),
        "properties": {
            kpi.code: {
                "type": "object",
                "additionalProperties": False,
                "properties": {span: levels(kpi) for span in kpi.spans},
            }
            for kpi in TARGETABLE_KPIS
        },
    }


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float | Decimal)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _text(value: float | Decimal) -> str:
    return str(int(value)) if value == int(value) else f"{float(value):g}"


def _by_span(levels: Mapping[str, Any]) -> Mapping[str, Any]:
    """A KPI's targets by span. Levels given without a span (the v1 shape) are the month's."""
    if any(level in levels for level in TARGET_LEVELS):
        return {MONTH: levels}
    return levels


def check_targets(raw: Any) -> Targets:
    """The targets as stored, or raise `InvalidTargets` with every problem found.

    For each KPI and span: all three levels, numbers within the KPI's range (whole numbers for
    counts; percentages 0 to 100), a count of people never 1 to 7, and levels that run the
    KPI's way (minimum <= expected <= stretch, or downwards where lower is better).
    """
    errors: dict[str, list[str]] = {}

    def fail(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidTargets({"": ["Give the targets as KPI code to span to levels"]})
    targets: Targets = {}
    for code, given in raw.items():
        code_key = str(code)[:20]
        kpi = TARGETABLE_BY_CODE.get(code) if isinstance(code, str) else None
        if kpi is None:
            if code in UNRATED_CODES:
                fail(code_key, f"{code} is not rated, so it takes no target")
            else:
                fail(code_key, "Unknown KPI code. Choose from: " + ", ".join(TARGETABLE_BY_CODE))
            continue
        if not isinstance(given, Mapping):
            fail(code_key, "Give the targets for each span: month, year_to_date")
            continue
        for span, levels in _by_span(given).items():
            key = f"{code}.{str(span)[:20]}"
            if span not in kpi.spans:
                fail(
                    key,
                    f"{code} takes targets for the month only"
                    if kpi.spans == _MONTH_ONLY
                    else "Choose a span: " + ", ".join(kpi.spans),
                )
                continue
            checked = _check_levels(kpi, span, levels, key, fail)
            if checked is not None:
                targets.setdefault(code, {})[span] = checked
    if errors:
        raise InvalidTargets(errors)
    return targets


def _check_levels(
    kpi: TargetableKpi, span: str, levels: Any, key: str, fail: Any
) -> dict[str, float] | None:
    if not isinstance(levels, Mapping):
        fail(key, "Must be an object with minimum, expected and stretch")
        return None
    for name in sorted(str(n) for n in set(levels) - set(TARGET_LEVELS)):
        fail(f"{key}.{name[:40]}", "Unknown field")
    described = f"{kpi.code} {SPAN_LABELS[span]}"
    good = True
    for level in TARGET_LEVELS:
        value = levels.get(level)
        where = f"{key}.{level}"
        if value is None:
            fail(
                where,
                f"Enter all three {described} targets (minimum, expected and stretch), or none",
            )
            good = False
        elif not _is_number(value):
            fail(where, f"The {described} {level} target must be a number")
            good = False
        elif value < kpi.lowest:
            fail(where, f"The {described} {level} target must be {_text(kpi.lowest)} or more")
            good = False
        elif value > kpi.highest:
            fail(where, f"The {described} {level} target must be {_text(kpi.highest)} or less")
            good = False
        elif kpi.whole_number and value != int(value):
            fail(where, f"The {described} {level} target must be a whole number")
            good = False
        elif kpi.people and 1 <= value <= SMALL_MAX:
            fail(
                where,
                f"{'An' if level == EXPECTED else 'A'} {level} target of 1 to {SMALL_MAX} for "
                f"{described} would rate a figure "
                "published as *. "
                + (
                    "Set a year-to-date target instead"
                    if span == MONTH and YEAR_TO_DATE in kpi.spans
                    else f"Set a target of 0, or of {SMALL_MAX + 1} or more"
                ),
            )
            good = False
    if not good:
        return None
    minimum, expected, stretch = (levels[level] for level in TARGET_LEVELS)
    rising = kpi.direction is Direction.HIGHER
    bound, way = ("at least", 1) if rising else ("at most", -1)
    if way * expected < way * minimum:
        fail(
            f"{key}.{EXPECTED}",
            f"The {described} expected target must be {bound} the minimum ({_text(minimum)})"
            + ("" if rising else f": lower is better for {kpi.code}"),
        )
        return None
    if way * stretch < way * expected:
        fail(
            f"{key}.{STRETCH}",
            f"The {described} stretch target must be {bound} the expected target "
            f"({_text(expected)})" + ("" if rising else f": lower is better for {kpi.code}"),
        )
        return None
    return {
        level: int(levels[level]) if kpi.whole_number else float(levels[level])
        for level in TARGET_LEVELS
    }


def target_for(stored: Mapping[str, Any] | None, code: str, span: str) -> dict[str, float] | None:
    """A contract's (or a stored return's) levels for one KPI and span, if it has them.

    Returns made under v1 stored levels without a span: those are the month's.
    """
    given = (stored or {}).get(code)
    if not isinstance(given, Mapping):
        return None
    levels = _by_span(given).get(span)
    return dict(levels) if isinstance(levels, Mapping) else None
