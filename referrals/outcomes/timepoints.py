"""When a wellbeing questionnaire belongs: baseline, end of course or follow-up.

The timepoint follows from where the person is on their course, not from a choice on a form:
the baseline at the first session they attend (or before it), the end at the course's last
session, the follow-up about three months after. A questionnaire in the middle of the course
is none of these, and is refused. Pure functions of their arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from referrals.outcomes.scoring import Timepoint

# "About three months after": accepted from eight weeks after the last session.
FOLLOW_UP_FROM = timedelta(weeks=8)


@dataclass(frozen=True)
class CourseDays:
    """The days that decide a person's timepoints."""

    sessions: Sequence[date]  # the course's sessions that are not cancelled
    attended: Sequence[date]  # the sessions this person attended

    @property
    def last_session(self) -> date | None:
        return max(self.sessions, default=None)

    @property
    def first_attended(self) -> date | None:
        return min(self.attended, default=None)

    def session_number(self, on: date) -> int:
        """How many of the course's sessions have taken place by `on`."""
        return sum(day <= on for day in self.sessions)


def _day(value: date) -> str:
    return value.strftime("%-d %B %Y")


def timepoint_problem(timepoint: Timepoint, on: date, days: CourseDays) -> str | None:
    """Why a questionnaire answered `on` cannot be recorded as `timepoint`, or None if it can."""
    last, first = days.last_session, days.first_attended
    if last is None:
        if timepoint is Timepoint.BASELINE:
            return None
        return "The course has no sessions yet: only a baseline can be recorded"
    follow_up_from = last + FOLLOW_UP_FROM
    if timepoint is Timepoint.BASELINE:
        if first is not None and on > first:
            return (
                "The baseline is taken at the first session the person attended "
                f"({_day(first)}) or before it"
            )
        if on > last:
            return f"The course ended on {_day(last)}: record the end or follow-up instead"
        return None
    if timepoint is Timepoint.END:
        if on < last:
            return (
                f"{_day(on)} is during the course (session {days.session_number(on)} of "
                f"{len(days.sessions)}): the end-of-course questionnaire is taken at the last "
                f"session, on {_day(last)}"
            )
        if on >= follow_up_from:
            return (
                f"The course ended on {_day(last)}: from {_day(follow_up_from)} a "
                "questionnaire is the follow-up"
            )
        return None
    if on < follow_up_from:
        return (
            "The follow-up is taken about three months after the course ends: from "
            f"{_day(follow_up_from)}"
        )
    return None


def timepoint_for(on: date, days: CourseDays) -> Timepoint | None:
    """The timepoint a questionnaire answered `on` belongs to; None in the middle of the
    course, where none is taken."""
    for timepoint in (Timepoint.FOLLOW_UP, Timepoint.END, Timepoint.BASELINE):
        if timepoint_problem(timepoint, on, days) is None:
            return timepoint
    return None
