"""A register sent as JSON, by the API or from the phone (the offline register): its entries
read into `RegisterEntry` values, each refusal named like `entries.2.mood_after`.

What the entries mean (who is on the register, moods only for those who attended) is checked by
`referrals.courses.register_rules` when the register is saved, whichever way it came.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, ValidationError

from referrals.courses.models import AttendanceStatus
from referrals.courses.register_rules import MOOD_MAX, MOOD_MIN, NOTE_MAX, RegisterEntry
from referrals.typed import Body, Id, Text, Whole, field_errors, limits

REGISTER_ENTRIES_MAX = 500
Mood = Annotated[Whole, limits(MOOD_MIN, MOOD_MAX)]


class RegisterEntryInput(Body):
    enrolment_id: Id
    status: AttendanceStatus
    mood_before: Mood | None = None
    mood_after: Mood | None = None
    note: Annotated[str, Text(NOTE_MAX)] = ""


class RegisterInput(Body):
    entries: list[RegisterEntryInput] = Field(max_length=REGISTER_ENTRIES_MAX)
    required = {
        "entries": "Give the register's entries",
        "entries.enrolment_id": "Give the enrolment id",
        "entries.status": "Choose attended, apologies or no_show",
    }

    def register_entries(self) -> list[RegisterEntry]:
        return [RegisterEntry(**entry.model_dump()) for entry in self.entries]


class RegisterUnreadable(ValueError):
    """Entries that are not a register: `errors` maps each dotted field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("The register's entries cannot be read")
        self.errors = errors


def register_entries_from_json(payload: Any) -> list[RegisterEntry]:
    """Register entries sent as JSON (`{"entries": [...]}`), read as the API reads them."""
    try:
        body = RegisterInput.model_validate_json(json.dumps(payload))
    except ValidationError as error:
        raise RegisterUnreadable(field_errors(error, RegisterInput.required)) from error
    return body.register_entries()
