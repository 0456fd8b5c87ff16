"""A return as CSV: one row per KPI and breakdown cell, UTF-8, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

from referrals.exports import safe_cell
from referrals.reports.models import KpiReturn

COLUMNS = ("period", "scope", "code", "name", "breakdown", "value", "suppressed", "target_rating")


def build_return_csv(kpi_return: KpiReturn, *, scope_label: str, raw: bool = False) -> bytes:
    """The return's cells as commissioners see them; `raw` adds the unrounded figure (admins)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*COLUMNS, "raw_value"] if raw else COLUMNS)
    for figure in kpi_return.figures:
        row = [
            kpi_return.period,
            scope_label,
            figure["code"],
            figure["name"],
            figure["breakdown"],
            figure["value"],
            "yes" if figure["suppressed"] else "no",
            figure["target_rating"] or "",
        ]
        if raw:
            row.append(figure["raw_value"])
        writer.writerow([safe_cell(cell) for cell in row])
    # A byte-order mark so spreadsheet programs read the file as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
