"""Returns as CSV (KPI specification v2): one row per KPI, span and breakdown cell.

After the specification's columns, `provisional` says whether the return was made before its
month's registers closed (its figures may still change). Admins' copy with the unrounded figures
adds `changed_since_made` (a register of the month was saved after the return was made) and
`raw_value`. Numbers are written as numbers, negative ones included; only text cells are guarded
against formula injection (a cell that is a number is never a formula). UTF-8 with a
byte-order mark.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

from referrals.exports import safe_cell
from referrals.reports.labels import changed_since_made, figure_target, span_of
from referrals.reports.models import KpiReturn

# One published figure, as the API gives it and as each CSV row carries it.
FIGURE_FIELDS = (
    "code",
    "name",
    "span",
    "breakdown",
    "value",
    "suppressed",
    "target_minimum",
    "target_expected",
    "target_stretch",
    "target_rating",
)
# v2's CSV: which return, then the figure, then the return's version and when it was made.
COLUMNS = (
    "period",
    "scope",
    "span",
    *(f for f in FIGURE_FIELDS if f != "span"),
    "version",
    "generated_at",
)
FLAG_COLUMNS = ("provisional",)
ADMIN_COLUMNS = ("changed_since_made", "raw_value")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _cell(value: Any) -> Any:
    """A number as it is; any other text guarded against formula injection."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else value
    text = str(value)
    return text if _NUMBER.fullmatch(text) else safe_cell(text)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _rows(kpi_return: KpiReturn, scope_label: str, raw: bool) -> Iterable[list[Any]]:
    generated_at = kpi_return.generated_at.isoformat(timespec="seconds")
    for figure in kpi_return.figures:
        target = figure_target(figure, kpi_return.targets) or {}
        row = [
            kpi_return.period,
            scope_label,
            span_of(figure),
            figure["code"],
            figure["name"],
            figure["breakdown"],
            figure["value"],
            _yes_no(figure["suppressed"]),
            target.get("minimum"),
            target.get("expected"),
            target.get("stretch"),
            figure.get("target_rating") or "",
            kpi_return.version,
            generated_at,
            _yes_no(kpi_return.provisional),
        ]
        if raw:
            row += [_yes_no(changed_since_made(kpi_return)), figure["raw_value"]]
        yield [_cell(cell) for cell in row]


def build_returns_csv(
    returns: Iterable[KpiReturn], *, scope_label: str, raw: bool = False
) -> bytes:
    """Several returns (a contract's months, for trend analysis) in one file, oldest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*COLUMNS, *FLAG_COLUMNS, *(ADMIN_COLUMNS if raw else ())])
    for kpi_return in returns:
        writer.writerows(_rows(kpi_return, scope_label, raw))
    # A byte-order mark so spreadsheet programs read the file as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def build_return_csv(kpi_return: KpiReturn, *, scope_label: str, raw: bool = False) -> bytes:
    """The return's cells as commissioners see them; `raw` adds the true figure (admins)."""
    return build_returns_csv([kpi_return], scope_label=scope_label, raw=raw)
