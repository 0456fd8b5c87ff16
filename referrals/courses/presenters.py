"""How course data reads on a page."""

from __future__ import annotations

from decimal import Decimal

from flask import Flask

from referrals.courses.models import Course
from referrals.courses.schedule import Schedule, describe
from referrals.outcomes.scoring import Instrument, Timepoint
from referrals.vocab import Pathway


def schedule_text(course: Course) -> str:
    """ "Weekly on Tuesdays, 10:00 to 12:00, 8 sessions from 3 March 2026"."""
    return describe(
        Schedule(
            start_date=course.start_date,
            start_time=course.start_time,
            duration_minutes=course.duration_minutes,
            frequency=course.frequency,
            sessions=course.session_count,
            taster_sessions=course.taster_count,
        )
    )


def pathways(values: list[str] | None) -> str:
    return ", ".join(Pathway(v).label for v in values or [] if v in Pathway._value2member_map_)


def age_range(course: Course) -> str:
    if course.min_age is None and course.max_age is None:
        return "Any age"
    if course.max_age is None:
        return f"{course.min_age} and over"
    if course.min_age is None:
        return f"Up to {course.max_age}"
    return f"{course.min_age} to {course.max_age}"


def participant_fee(course: Course) -> str:
    """What a participant pays, as shown to people and published: "Free" or "£3.00 per
    session". Never the course's cost to the contract."""
    if not course.participant_fee_pence:
        return "Free"
    return f"£{Decimal(course.participant_fee_pence) / 100:.2f} per session"


def init_app(app: Flask) -> None:
    app.add_template_filter(schedule_text, "schedule_text")
    app.add_template_filter(pathways, "pathways")
    app.add_template_filter(age_range, "age_range")
    app.add_template_filter(participant_fee, "participant_fee")
    app.add_template_filter(Instrument, "instrument")
    app.add_template_filter(Timepoint, "timepoint")
