"""The rules of a register, whichever way it arrives: the screen, a CSV upload or the API.

Pure functions of their arguments. Each channel reads its own format (form fields, CSV cells,
JSON) into `RegisterEntry` values; the service checks them here, so a register one channel
refuses is refused by all of them, with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from referrals import clock
from referrals.courses.models import AttendanceStatus
from referrals.text import control_characters_refused, has_control_characters

MOOD_MIN, MOOD_MAX = 0, 10
# An artist may change a session's register for this many days after it; then it is closed.
REGISTER_EDIT_DAYS = 7
NOTE_MAX = 1000
MOOD_FIELDS = ("mood_before", "mood_after")
MOOD_RANGE_MESSAGE = f"Mood must be a whole number from {MOOD_MIN} to {MOOD_MAX}"


@dataclass(frozen=True)
class RegisterEntry:
    enrolment_id: int
    status: AttendanceStatus
    mood_before: int | None = None
    mood_after: int | None = None
    note: str = ""


class MoodUnreadable(ValueError):
    """Text that is not a mood (a whole number in range, or blank)."""


def parse_mood(text: str) -> int | None:
    """A mood typed or chosen as text: None when blank, else a whole number in range."""
    value = text.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit() and len(value) <= 2 and int(value) <= MOOD_MAX:
        return int(value)
    raise MoodUnreadable(MOOD_RANGE_MESSAGE)


def on_register_until(session_day: date) -> datetime:
    """People enrolled before this moment (the end of the session's day in England) belong on
    its register; anyone enrolled later joined after the session and is not on it."""
    midnight = datetime.combine(session_day + timedelta(days=1), time(0), tzinfo=clock.zone())
    return midnight.astimezone(UTC)


def entry_problems(
    entries: Sequence[RegisterEntry], people: Mapping[int, str]
) -> dict[str, list[str]]:
    """Every problem with a register's entries, keyed `entries.<index>.<field>`.

    `people` maps the enrolment ids on the session's register to the person's name.
    """
    errors: dict[str, list[str]] = {}
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        key = f"entries.{index}."
        name = people.get(entry.enrolment_id)
        if name is None:
            errors[key + "enrolment_id"] = ["This person is not on this session's register"]
        elif entry.enrolment_id in seen:
            errors[key + "enrolment_id"] = [f"{name} is listed twice"]
        seen.add(entry.enrolment_id)
        for field in MOOD_FIELDS:
            value = getattr(entry, field)
            if value is not None and not (isinstance(value, int) and MOOD_MIN <= value <= MOOD_MAX):
                errors[key + field] = [MOOD_RANGE_MESSAGE]
        has_mood = entry.mood_before is not None or entry.mood_after is not None
        if has_mood and entry.status is not AttendanceStatus.ATTENDED:
            field = "mood_before" if entry.mood_before is not None else "mood_after"
            who = f" ({name})" if name else ""
            errors.setdefault(key + field, []).append(
                f"Moods are only recorded for people who attended{who}"
            )
        if len(entry.note) > NOTE_MAX:
            errors[key + "note"] = [f"Note must be {NOTE_MAX} characters or fewer"]
        elif has_control_characters(entry.note):
            errors[key + "note"] = [control_characters_refused("Note")]
    return errors


def recorded_text(count: int) -> str:
    """ "1 person" or "6 people": how many people one save recorded."""
    return "1 person" if count == 1 else f"{count} people"
