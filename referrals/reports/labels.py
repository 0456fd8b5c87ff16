"""How return cells read: breakdown labels and target text, shared by pages and the PDF."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from referrals.courses.kpi_targets import target_for
from referrals.vocab import Ethnicity, Pathway, ReferrerType, Sex

_CLOSE_REASONS = {
    "declined": "Declined",
    "unable_to_contact": "Unable to contact",
    "not_suitable": "Not suitable",
    "did_not_start": "Did not start",
    "other": "Other, including withdrawn",
}
_VOCABULARIES: dict[str, tuple[str, Any]] = {
    "referrer_type": ("Referrer type", ReferrerType),
    "pathway": ("Pathway", Pathway),
    "sex": ("Sex", Sex),
    "ethnicity": ("Ethnic group", Ethnicity),
}


def breakdown_label(breakdown: str) -> str:
    """`pathway=copd_asthma` as people read it: `Pathway: COPD or asthma`."""
    if not breakdown:
        return ""
    dimension, _, value = breakdown.partition("=")
    if dimension == "age_band":
        if value == "75+":
            return "Age band: 75 and over"
        if value == "unknown":
            return "Age band: not known"
        return "Age band: " + value.replace("-", " to ")
    if dimension == "close_reason":
        return "Close reason: " + _CLOSE_REASONS.get(value, value.replace("_", " ").capitalize())
    title, vocabulary = _VOCABULARIES.get(
        dimension, (dimension.replace("_", " ").capitalize(), None)
    )
    try:
        text = vocabulary(value).label if vocabulary else value
    except ValueError:
        text = value.replace("_", " ").capitalize()
    return f"{title}: {text}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def target_text(target: dict[str, Any] | None) -> str:
    if not target:
        return ""
    parts = [
        f"{level} {_number(target[level])}"
        for level in ("minimum", "expected", "stretch")
        if level in target
    ]
    return ("Target: " + ", ".join(parts)) if parts else ""


# Returns as rows of spans -------------------------------------------------------------------

SPANS = ("month", "year_to_date", "contract_to_date")
SPAN_TITLES = {
    "month": "Month",
    "year_to_date": "Year to date",
    "contract_to_date": "Contract to date",
}
# A rating in words, the same in the PDF and on the pages.
RATING_WORDS = {
    "red": "Red — below minimum",
    "amber": "Amber — minimum met, below expected",
    "green": "Green — expected met",
    "stretch met": "Stretch met — at or above stretch",
}
SUPPRESSION_NOTE = (
    "Counts of people from 1 to 7 are shown as *; other counts are rounded to the nearest 5; "
    "means, medians and costs per head over 1 to 7 people are shown as *; percentages are "
    "computed from the true counts, to a whole per cent, and are * when their numerator or "
    "denominator is 1 to 7; where a suppressed cell could be worked out from the others, the "
    "smallest other cell is suppressed too. Sessions and money are shown as they are."
)
SWEMWBS_NOTE = (
    "SWEMWBS metric scores run from 7 to 35; the national average for adults in England "
    "(Health Survey for England) is about 23.5."
)


def span_of(figure: dict[str, Any]) -> str:
    """A stored figure's span; returns made under specification v1 had the month only."""
    return str(figure.get("span") or "month")


@dataclass(frozen=True)
class Cell:
    value: str
    raw_value: str
    rating: str | None
    target: dict[str, Any] | None

    @property
    def rating_words(self) -> str:
        return RATING_WORDS.get(self.rating or "", "Not rated" if self.target else "No target")


@dataclass
class Row:
    code: str
    name: str
    breakdown: str
    cells: dict[str, Cell] = field(default_factory=dict)


def figure_target(figure: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any] | None:
    levels = {
        level: figure[f"target_{level}"]
        for level in ("minimum", "expected", "stretch")
        if figure.get(f"target_{level}") is not None
    }
    if levels or "target_minimum" in figure:
        return levels or None
    if figure.get("breakdown"):
        return None
    return target_for(stored, figure["code"], span_of(figure))


def return_rows(figures: list[dict[str, Any]], targets: dict[str, Any] | None) -> list[Row]:
    """One row per KPI and breakdown cell, with a cell for each span it has."""
    rows: dict[tuple[str, str], Row] = {}
    for figure in figures:
        key = (figure["code"], figure["breakdown"])
        row = rows.setdefault(key, Row(figure["code"], figure["name"], figure["breakdown"]))
        row.cells[span_of(figure)] = Cell(
            value=figure["value"],
            raw_value=figure["raw_value"],
            rating=figure.get("target_rating"),
            target=figure_target(figure, targets),
        )
    return sorted(rows.values(), key=lambda r: (r.code, r.breakdown != ""))


def spans_in(figures: list[dict[str, Any]]) -> list[str]:
    present = {span_of(f) for f in figures}
    return [span for span in SPANS if span in present]


def is_withheld(entry: dict[str, Any]) -> bool:
    """A suppression log entry for a cell shown as `*` (not one that was only rounded)."""
    if "protection" in entry:
        return bool(entry["protection"] == "suppressed")
    return bool(entry.get("shown") == "*")


def withheld_cells(log: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The cells of a return's suppression log that are shown as `*`."""
    return [entry for entry in log or [] if is_withheld(entry)]


def changed_since_made(kpi_return: Any) -> bool:
    """The current return of a month whose registers were saved after it was made (shown to
    admins, who may regenerate it; a superseded version is already replaced)."""
    return kpi_return.superseded_at is None and kpi_return.registers_changed_at is not None
