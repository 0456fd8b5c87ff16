"""How return cells read: breakdown labels and target text, shared by pages and the PDF."""

from __future__ import annotations

from typing import Any

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
