"""Course schedules expanded into dated sessions.

A course meets weekly or fortnightly on its start date's weekday. Taster sessions come first, then
the regular ones. An occurrence on an England bank holiday (when the course skips them) or inside a
term break is dropped and the course runs on to the next occurrence, so the number of sessions is
always the number asked for. Pure: nothing here reads the clock or the database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from dateutil.relativedelta import relativedelta
from dateutil.rrule import WEEKLY, rrule

from referrals.dates import format_date
from referrals.workdays import is_bank_holiday

MIN_SESSIONS, MAX_SESSIONS = 1, 200
MIN_TASTERS, MAX_TASTERS = 0, 10
MIN_DURATION, MAX_DURATION = 15, 480
# Every session must fall within this many years of the start date; long term breaks could
# otherwise push a course out indefinitely.
MAX_YEARS = 10

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Frequency(enum.StrEnum):
    WEEKLY = "weekly"
    FORTNIGHTLY = "fortnightly"

    @property
    def label(self) -> str:
        return _FREQUENCY_LABELS[self]

    @property
    def weeks(self) -> int:
        """Weeks between one occurrence and the next."""
        return 2 if self is Frequency.FORTNIGHTLY else 1


_FREQUENCY_LABELS = {Frequency.WEEKLY: "Weekly", Frequency.FORTNIGHTLY: "Every two weeks"}


@dataclass(frozen=True)
class Schedule:
    start_date: date
    start_time: time
    duration_minutes: int
    frequency: Frequency
    sessions: int
    taster_sessions: int = 0
    skip_bank_holidays: bool = True
    term_breaks: tuple[tuple[date, date], ...] = ()


@dataclass(frozen=True)
class PlannedSession:
    sequence: int
    date: date
    start_time: time
    duration_minutes: int
    is_taster: bool

    @property
    def end_time(self) -> time:
        return _end_time(self.start_time, self.duration_minutes)


class InvalidSchedule(ValueError):
    """The schedule cannot be expanded; `errors` maps each field to messages fit to show."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("invalid schedule: " + ", ".join(sorted(errors)))
        self.errors = dict(errors)


def validate(schedule: Schedule) -> dict[str, list[str]]:
    """Field errors for the schedule; empty when it can be expanded."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not MIN_SESSIONS <= schedule.sessions <= MAX_SESSIONS:
        fail("sessions", f"Number of sessions must be between {MIN_SESSIONS} and {MAX_SESSIONS}")
    if not MIN_TASTERS <= schedule.taster_sessions <= MAX_TASTERS:
        fail(
            "taster_sessions",
            f"Number of taster sessions must be between {MIN_TASTERS} and {MAX_TASTERS}",
        )
    if not MIN_DURATION <= schedule.duration_minutes <= MAX_DURATION:
        fail(
            "duration_minutes",
            f"Session length must be between {MIN_DURATION} and {MAX_DURATION} minutes",
        )
    elif _minutes_into_day(schedule.start_time) + schedule.duration_minutes > 24 * 60:
        fail(
            "duration_minutes",
            f"A session must finish by midnight; this one would end at "
            f"{_end_time(schedule.start_time, schedule.duration_minutes):%H:%M} the next day",
        )
    for number, (first, last) in enumerate(schedule.term_breaks, start=1):
        if first > last:
            fail("term_breaks", f"Term break {number} must end on or after the day it starts")
    return errors


def expand(schedule: Schedule) -> list[PlannedSession]:
    """The course's sessions in date order, tasters first; raises InvalidSchedule."""
    errors = validate(schedule)
    if errors:
        raise InvalidSchedule(errors)
    wanted = schedule.taster_sessions + schedule.sessions
    dates: list[date] = []
    for occurrence in _occurrences(schedule):
        if _is_skipped(schedule, occurrence):
            continue
        dates.append(occurrence)
        if len(dates) == wanted:
            break
    else:
        field = "term_breaks" if schedule.term_breaks else "sessions"
        raise InvalidSchedule(
            {field: [f"All the sessions must fall within {MAX_YEARS} years of the start date"]}
        )
    return [
        PlannedSession(
            sequence=sequence,
            date=day,
            start_time=schedule.start_time,
            duration_minutes=schedule.duration_minutes,
            is_taster=sequence <= schedule.taster_sessions,
        )
        for sequence, day in enumerate(dates, start=1)
    ]


def weekday_name(schedule: Schedule) -> str:
    """The day the course meets, e.g. "Tuesday"."""
    return _WEEKDAYS[schedule.start_date.weekday()]


def end_date(sessions: Sequence[PlannedSession]) -> date:
    """The date of the last session; raises ValueError for no sessions."""
    if not sessions:
        raise ValueError("a course has at least one session")
    return max(session.date for session in sessions)


def describe(schedule: Schedule) -> str:
    """A one-line summary for people, e.g. "Weekly on Tuesdays, 10:00 to 12:00, 8 sessions from
    3 March 2026 (plus 2 taster sessions)". Raises InvalidSchedule like `expand`."""
    planned = expand(schedule)
    end = _end_time(schedule.start_time, schedule.duration_minutes)
    text = (
        f"{schedule.frequency.label} on {weekday_name(schedule)}s, "
        f"{schedule.start_time:%H:%M} to {'midnight' if end == time(0) else f'{end:%H:%M}'}, "
        f"{_count(schedule.sessions, 'session')} from {format_date(planned[0].date)}"
    )
    if schedule.term_breaks:
        text += f" with {_count(len(schedule.term_breaks), 'term break')}"
    if schedule.taster_sessions:
        text += f" (plus {_count(schedule.taster_sessions, 'taster session')})"
    return text


def _occurrences(schedule: Schedule) -> Iterator[date]:
    """Every date on the pattern from the start date up to the horizon, skipped or not."""
    start = datetime.combine(schedule.start_date, time())
    until: datetime | None
    try:
        until = start + relativedelta(years=MAX_YEARS)
    except ValueError:  # past the end of the calendar, where the rule stops by itself
        until = None
    rule = rrule(WEEKLY, interval=schedule.frequency.weeks, dtstart=start, until=until)
    return (occurrence.date() for occurrence in rule)


def _is_skipped(schedule: Schedule, day: date) -> bool:
    if schedule.skip_bank_holidays and is_bank_holiday(day):
        return True
    return any(first <= day <= last for first, last in schedule.term_breaks)


def _minutes_into_day(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _end_time(start: time, duration_minutes: int) -> time:
    minutes = (_minutes_into_day(start) + duration_minutes) % (24 * 60)
    return time(minutes // 60, minutes % 60)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
