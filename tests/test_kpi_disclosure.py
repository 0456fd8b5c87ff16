"""No suppressed cell of a published return can be worked out exactly (spec v2, Small numbers).

Returns are generated at random (hypothesis) with the breakdowns a real return has: A1 by
referrer type and by pathway, A2 by close reason, and B1 by age band, sex and ethnic group
(section D), published by the service's own `publish`. The check here is independent of the
service's interval reasoning: it enumerates, as sets of integers, every combination of values
the published cells could stand for (0 exactly; a rounded r is r-2 to r+2; `*` is 1 to 7 for a
reader who takes it at its word, or anything for one who knows secondary suppression hides
larger counts) and asks, for every suppressed cell, whether exactly one value remains — its
true one.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from referrals.reports.kpi import Figure, PublishedFigure, Result, publish
from referrals.reports.rules import Kind

SUPPRESSED = "*"
CAP = 150  # wide enough for any generated count (totals up to 60)
REFERRER_TYPES = ("gp", "link_worker", "other_health_professional", "self")
PATHWAYS = tuple(f"p{n}" for n in range(9))
REASONS = ("declined", "unable_to_contact", "not_suitable", "did_not_start", "other")
AGES = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+", "unknown")
SEXES = ("female", "male", "other", "not_stated")
ETHNICITIES = ("asian", "black", "mixed", "white", "other", "not_stated")


def _domain(shown: str, star: tuple[int, int]) -> range:
    if shown == SUPPRESSED:
        return range(star[0], star[1] + 1)
    value = int(shown)
    return range(0, 1) if value == 0 else range(value - 2, value + 3)


def _sums(domains: list[range]) -> int:
    """Every total the cells can make, as a bitset (bit n set: n is reachable)."""
    reachable = 1
    for domain in domains:
        reachable = _shifted(reachable, domain)
    return reachable


def _shifted(mask: int, domain: range) -> int:
    out = 0
    for value in domain:
        out |= mask << value
    return out


def recovered_cells(
    total: PublishedFigure, groups: list[list[PublishedFigure]], total_known: int | None
) -> list[tuple[str, str, int]]:
    """Suppressed cells whose value is pinned to exactly their true value, under a reading."""
    found = []
    for star in ((1, 7), (0, CAP)):
        total_domain = (
            range(total_known, total_known + 1)
            if total_known is not None
            else _domain(total.value, star)
        )
        feasible_totals = _shifted(1, total_domain)
        for group in groups:
            feasible_totals &= _sums([_domain(c.value, star) for c in group])
        if not feasible_totals:
            continue  # the reading cannot be right for this return
        if total.value == SUPPRESSED:
            values = [t for t in total_domain if feasible_totals >> t & 1]
            if values == [int(total.raw_value)]:
                found.append((total.code, "", values[0]))
        for group in groups:
            for cell in group:
                if cell.value != SUPPRESSED:
                    continue
                others = _sums([_domain(c.value, star) for c in group if c is not cell])
                values = [v for v in _domain(cell.value, star) if (others << v) & feasible_totals]
                if values == [int(cell.raw_value)]:
                    found.append((cell.code, cell.breakdown, values[0]))
    return found


@st.composite
def split(draw: Any, total: int, parts: int) -> list[int]:
    """`total` cut into `parts` counts, often with small cells."""
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=parts - 1, max_size=parts - 1)))
    bounds = [0, *cuts, total]
    return [high - low for low, high in itertools.pairwise(bounds)]


@st.composite
def returns(draw: Any) -> Result:
    figures: list[Figure] = []

    def family(code: str, total: int, breakdowns: dict[str, tuple[str, ...]]) -> None:
        figures.append(Figure(code, Kind.COUNT, total))
        for dimension, cells in breakdowns.items():
            cell_code = {"age_band": "D1", "sex": "D2", "ethnicity": "D3"}.get(dimension, code)
            for name, count in zip(cells, draw(split(total, len(cells))), strict=True):
                figures.append(Figure(cell_code, Kind.COUNT, count, f"{dimension}={name}"))

    a1, a2, b1 = draw(st.integers(0, 60)), draw(st.integers(0, 40)), draw(st.integers(0, 60))
    family("A1", a1, {"referrer_type": REFERRER_TYPES, "pathway": PATHWAYS})
    family("A2", a2, {"close_reason": REASONS})
    family("B1", b1, {"age_band": AGES, "sex": SEXES, "ethnicity": ETHNICITIES})
    # Cost figures: where E1 and E2 are both shown, B1 is known exactly (E1 / E2).
    pence = draw(st.sampled_from([0, 4000]))
    e1 = Decimal(pence * 12) / 100
    figures.append(Figure("E1", Kind.MONEY, e1))
    per_person = (e1 / b1).quantize(Decimal("0.01")) if b1 else None
    figures.append(Figure("E2", Kind.COST, per_person, people=b1))
    return Result("contract:1", "2026-03", "2", figures)


def _families(published: list[PublishedFigure]) -> list[tuple[Any, list[list[Any]], int | None]]:
    by_key = {(p.code, p.breakdown): p for p in published}
    groups: dict[str, list[PublishedFigure]] = defaultdict(list)
    for p in published:
        if p.breakdown:
            groups[p.code + ":" + p.breakdown.partition("=")[0]].append(p)
    e1, e2 = by_key[("E1", "")], by_key[("E2", "")]
    b1_known = (
        int(by_key[("B1", "")].raw_value)
        if e2.value not in ("", SUPPRESSED) and Decimal(e1.value) > 0
        else None
    )
    return [
        (by_key[("A1", "")], [groups["A1:referrer_type"], groups["A1:pathway"]], None),
        (by_key[("A2", "")], [groups["A2:close_reason"]], None),
        (
            by_key[("B1", "")],
            [groups["D1:age_band"], groups["D2:sex"], groups["D3:ethnicity"]],
            b1_known,
        ),
    ]


@settings(max_examples=300, deadline=None)
@given(returns())
def test_no_suppressed_cell_is_recoverable(result: Result) -> None:
    published = publish(result, None)
    for total, groups, known in _families(published):
        assert recovered_cells(total, groups, known) == []


@settings(max_examples=100, deadline=None)
@given(returns())
def test_secondary_suppression_only_adds_stars(result: Result) -> None:
    """Every cell is either as the primary rule shows it, or withheld as secondary."""
    for figure in publish(result, None):
        if figure.secondary:
            assert figure.suppressed
        elif figure.kind == "count":
            count = int(figure.raw_value)
            primary = "0" if count == 0 else "*" if count <= 7 else None
            if primary is not None:
                assert figure.value == primary


def _issue_return() -> Result:
    """The audit's example: B1 22 (20), female 13 (15), male 8 (10), other 0, not stated 1."""
    figures = [Figure("B1", Kind.COUNT, 22)]
    figures += [
        Figure("D2", Kind.COUNT, n, f"sex={s}") for s, n in zip(SEXES, (13, 8, 0, 1), strict=True)
    ]
    return Result("contract:1", "2026-03", "2", figures)


def test_the_audits_subtraction_no_longer_works() -> None:
    total = PublishedFigure("B1", "", "month", "", "20", "22", False, None, "count")
    cells = [
        PublishedFigure("D2", "", "month", "sex=female", "15", "13", False, None, "count"),
        PublishedFigure("D2", "", "month", "sex=male", "10", "8", False, None, "count"),
        PublishedFigure("D2", "", "month", "sex=other", "0", "0", False, None, "count"),
        PublishedFigure("D2", "", "month", "sex=not_stated", "*", "1", True, None, "count"),
    ]
    # With the primary rule alone, "not stated" is exactly 1: the checker finds it.
    assert recovered_cells(total, [cells], None) == [("D2", "sex=not_stated", 1)]
    shown = {(p.code, p.breakdown): p.value for p in publish(_issue_return(), None)}
    assert shown[("D2", "sex=not_stated")] == "*"
    assert shown[("D2", "sex=male")] == "*"  # the smallest other cell, withheld too
    assert shown[("D2", "sex=female")] == "15"
    assert shown[("B1", "")] == "20"
