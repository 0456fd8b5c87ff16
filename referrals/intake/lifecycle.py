"""The referral lifecycle as a pure transition table.

Every status change anywhere in the service goes through `check_transition`; the table is the
single source of truth and is documented in docs/referral-lifecycle.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    RECEIVED = "received"
    CONTACTING = "contacting"
    ASSESSED = "assessed"
    ENROLLED = "enrolled"
    WAITLISTED = "waitlisted"
    STARTED = "started"
    COMPLETED = "completed"
    DECLINED = "declined"
    UNABLE_TO_CONTACT = "unable_to_contact"
    NOT_SUITABLE = "not_suitable"
    DID_NOT_START = "did_not_start"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES

    @property
    def is_closing(self) -> bool:
        return self in CLOSING_STATUSES


_LABELS = {
    Status.RECEIVED: "Received",
    Status.CONTACTING: "Contacting",
    Status.ASSESSED: "Assessed",
    Status.ENROLLED: "Enrolled",
    Status.WAITLISTED: "On a waiting list",
    Status.STARTED: "Started",
    Status.COMPLETED: "Completed",
    Status.DECLINED: "Declined",
    Status.UNABLE_TO_CONTACT: "Unable to contact",
    Status.NOT_SUITABLE: "Not suitable",
    Status.DID_NOT_START: "Did not start",
    Status.WITHDRAWN: "Withdrawn",
}

OPEN_STATUSES = frozenset(
    {
        Status.RECEIVED,
        Status.CONTACTING,
        Status.ASSESSED,
        Status.ENROLLED,
        Status.WAITLISTED,
        Status.STARTED,
    }
)
CLOSING_STATUSES = frozenset(
    {
        Status.DECLINED,
        Status.UNABLE_TO_CONTACT,
        Status.NOT_SUITABLE,
        Status.DID_NOT_START,
        Status.WITHDRAWN,
    }
)
CLOSED_STATUSES = CLOSING_STATUSES | {Status.COMPLETED}

# SNOMED CT concepts the GP practice records from the message back.
SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING = "871731000000106"
SNOMED_SOCIAL_PRESCRIBING_DECLINED = "871711000000103"


class Actor(enum.Enum):
    """Who may make a move: a person on the referral pages, or the courses capability."""

    PERSON = "person"
    SYSTEM = "system"


@dataclass(frozen=True)
class Move:
    actor: Actor
    needs_reason: bool = False


_P, _S = Actor.PERSON, Actor.SYSTEM
_CLOSE = Move(_P, needs_reason=True)

TRANSITIONS: dict[tuple[Status, Status], Move] = {
    # Triage by the link worker.
    (Status.RECEIVED, Status.CONTACTING): Move(_P),
    (Status.RECEIVED, Status.ASSESSED): Move(_P),  # met the person at once, e.g. self-referral
    (Status.CONTACTING, Status.ASSESSED): Move(_P),
    # Matching, set by the courses capability.
    (Status.ASSESSED, Status.ENROLLED): Move(_S),
    (Status.ASSESSED, Status.WAITLISTED): Move(_S),
    (Status.WAITLISTED, Status.ENROLLED): Move(_S),
    (Status.ENROLLED, Status.ASSESSED): Move(_S),  # withdrawn from a course, to be matched again
    (Status.WAITLISTED, Status.ASSESSED): Move(_S),
    (Status.ENROLLED, Status.STARTED): Move(_S),
    (Status.STARTED, Status.COMPLETED): Move(_S),
    # Closing, always with a reason.
    (Status.RECEIVED, Status.DECLINED): _CLOSE,
    (Status.RECEIVED, Status.NOT_SUITABLE): _CLOSE,
    (Status.RECEIVED, Status.WITHDRAWN): _CLOSE,
    (Status.CONTACTING, Status.DECLINED): _CLOSE,
    (Status.CONTACTING, Status.UNABLE_TO_CONTACT): _CLOSE,
    (Status.CONTACTING, Status.NOT_SUITABLE): _CLOSE,
    (Status.CONTACTING, Status.WITHDRAWN): _CLOSE,
    (Status.ASSESSED, Status.DECLINED): _CLOSE,
    (Status.ASSESSED, Status.NOT_SUITABLE): _CLOSE,
    (Status.ASSESSED, Status.WITHDRAWN): _CLOSE,
    (Status.ENROLLED, Status.DID_NOT_START): _CLOSE,
    (Status.ENROLLED, Status.DECLINED): _CLOSE,
    (Status.ENROLLED, Status.WITHDRAWN): _CLOSE,
    (Status.WAITLISTED, Status.DID_NOT_START): _CLOSE,
    (Status.WAITLISTED, Status.DECLINED): _CLOSE,
    (Status.WAITLISTED, Status.WITHDRAWN): _CLOSE,
    (Status.STARTED, Status.WITHDRAWN): _CLOSE,
    # Reopening a closed referral, with a reason, back to triage.
    **{(closed, Status.CONTACTING): _CLOSE for closed in CLOSED_STATUSES},
}


class TransitionRefused(ValueError):
    """A move the lifecycle does not allow; the message is fit to show the user."""


def check_transition(current: Status, target: Status, *, actor: Actor, reason: str = "") -> Move:
    """Return the move if the lifecycle allows it for this actor, else raise with a message."""
    move = TRANSITIONS.get((current, target))
    if move is None:
        raise TransitionRefused(
            f"A referral that is {current.label.lower()} cannot move to {target.label.lower()}"
        )
    if move.actor is Actor.SYSTEM and actor is not Actor.SYSTEM:
        raise TransitionRefused(
            f"{target.label} is set by enrolling the person on a course, not by hand"
        )
    if move.needs_reason and not reason.strip():
        raise TransitionRefused("Give a reason")
    return move


def next_steps(current: Status, actor: Actor = Actor.PERSON) -> list[Status]:
    """Statuses a person (or the system) may move a referral to from `current`, in table order."""
    return [
        to
        for (frm, to), move in TRANSITIONS.items()
        if frm is current and (actor is Actor.SYSTEM or move.actor is Actor.PERSON)
    ]


def is_reopening(current: Status, target: Status) -> bool:
    return current in CLOSED_STATUSES and target in OPEN_STATUSES


def snomed_code_for(current: Status, target: Status) -> str | None:
    """The SNOMED CT concept a move records: accepted support, or declined it."""
    if target is Status.ASSESSED and current in (Status.RECEIVED, Status.CONTACTING):
        return SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING
    if target is Status.DECLINED:
        return SNOMED_SOCIAL_PRESCRIBING_DECLINED
    return None


def close_reason_category(status: Status) -> str | None:
    """KPI A2's close-reason breakdown for a closing status."""
    if status not in CLOSING_STATUSES:
        return None
    return status.value if status is not Status.WITHDRAWN else "other"
