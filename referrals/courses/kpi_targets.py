"""The KPIs a contract can set monthly targets for (see kpi-spec.md, Targets).

Plain data shared by the contract form and the KPI return's RAG ratings. Every KPI here is one
where a higher figure is better, so "below minimum is red" reads correctly; KPIs where lower is
better (A2, A3, B3, C6) and the context figures C2 and C3 take no targets.

A contract stores its targets as `{"B1": {"minimum": 40, "expected": 50, "stretch": 60}}`:
all three levels or none for each KPI, with minimum <= expected <= stretch.
"""

from __future__ import annotations

from dataclasses import dataclass

MINIMUM, EXPECTED, STRETCH = "minimum", "expected", "stretch"
TARGET_LEVELS: tuple[str, ...] = (MINIMUM, EXPECTED, STRETCH)


@dataclass(frozen=True)
class TargetableKpi:
    code: str
    name: str
    unit: str
    # Counts take whole numbers; rates and means may have up to two decimal places.
    whole_number: bool = True
    # Percentages stop at 100, mean SWEMWBS change at 28 (metric 7 to 35), mood uplift at 10.
    maximum: int | None = None


TARGETABLE_KPIS: tuple[TargetableKpi, ...] = (
    TargetableKpi("A1", "Referrals received", "referrals"),
    TargetableKpi(
        "B1", "Number of people supported to access arts or cultural groups/activities", "people"
    ),
    TargetableKpi("B2", "New starters", "people"),
    TargetableKpi("B4", "Sessions delivered", "sessions"),
    TargetableKpi("B5", "Attendances", "attendances"),
    TargetableKpi("B6", "Attendance rate (%)", "percent", whole_number=False, maximum=100),
    TargetableKpi("B7", "Completions", "people"),
    TargetableKpi("C1", "Paired outcomes", "people"),
    TargetableKpi("C4", "Mean change", "SWEMWBS metric points", whole_number=False, maximum=28),
    TargetableKpi("C5", "Improved (%)", "percent", whole_number=False, maximum=100),
    TargetableKpi("C7", "Session mood uplift", "mood points", whole_number=False, maximum=10),
)

TARGETABLE_BY_CODE: dict[str, TargetableKpi] = {kpi.code: kpi for kpi in TARGETABLE_KPIS}
