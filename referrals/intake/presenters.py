"""How referral data reads on a page: the merged timeline and small formatters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import Flask
from flask_login import current_user
from markupsafe import Markup

from referrals.intake.identity import person_seen_by
from referrals.intake.lifecycle import Status
from referrals.intake.models import Referral
from referrals.intake.validation import age_on, format_nhs_number
from referrals.vocab import ArtForm


@dataclass
class TimelineItem:
    at: datetime
    title: str
    who: str = ""
    lines: list[str] = field(default_factory=list)


def timeline(referral: Referral) -> list[TimelineItem]:
    """Transitions, contact attempts and conversations, oldest first."""
    items: list[TimelineItem] = []
    for step in referral.transitions:
        title = (
            "Referral received"
            if step.from_status is None
            else f"{step.from_status.label} → {step.to_status.label}"
        )
        lines = [f"Reason: {step.reason}" if step.reason else "", step.note]
        if step.snomed_code:
            lines.append(f"SNOMED CT {step.snomed_code} recorded")
        items.append(
            TimelineItem(
                step.at,
                title,
                step.actor.name if step.actor else "System",
                [line for line in lines if line],
            )
        )
    for attempt in referral.contact_attempts:
        items.append(
            TimelineItem(
                attempt.at,
                f"Contact attempt: {attempt.method.label.lower()}, {attempt.outcome.label.lower()}",
                attempt.actor.name if attempt.actor else "",
                [attempt.note] if attempt.note else [],
            )
        )
    for conversation in referral.conversations:
        items.append(
            TimelineItem(
                conversation.at,
                "What matters conversation recorded",
                conversation.actor.name if conversation.actor else "",
            )
        )
    return sorted(items, key=lambda item: item.at)


def art_forms(values: list[str] | None) -> str:
    labels = [ArtForm(v).label for v in values or [] if v in ArtForm._value2member_map_]
    return ", ".join(labels)


def nhs_number(value: str | None) -> str:
    return format_nhs_number(value) if value else "Not recorded"


def age(date_of_birth: date | None, today: date) -> Any:
    return age_on(date_of_birth, today) if date_of_birth else "unknown"


def person(referral: Referral) -> Any:
    """The person on a referral as the signed-in user may see them."""
    return person_seen_by(current_user, referral)


# The NHS.UK tag colour of each status, wherever a referral's status is shown.
STATUS_COLOURS = {
    Status.RECEIVED: "blue",
    Status.CONTACTING: "aqua-green",
    Status.ASSESSED: "purple",
    Status.ENROLLED: "green",
    Status.WAITLISTED: "yellow",
    Status.STARTED: "green",
    Status.COMPLETED: "white",
    Status.DECLINED: "grey",
    Status.UNABLE_TO_CONTACT: "grey",
    Status.NOT_SUITABLE: "grey",
    Status.DID_NOT_START: "grey",
    Status.WITHDRAWN: "grey",
}
_TAG = Markup('<strong class="nhsuk-tag nhsuk-tag--{}">{}</strong>')
_STATUS_TAGS = {
    status: _TAG.format(colour, status.label) for status, colour in STATUS_COLOURS.items()
}


def status_tag(status: Status) -> Markup:
    """A status as its tag: made once per status, not rendered from a template for each row."""
    return _STATUS_TAGS[Status(status)]


def init_app(app: Flask) -> None:
    app.add_template_filter(status_tag, "status_tag")
    app.add_template_filter(person, "person")
    app.add_template_filter(timeline, "timeline")
    app.add_template_filter(art_forms, "art_forms")
    app.add_template_filter(nhs_number, "nhs_number")
    app.add_template_filter(age, "age")
