"""The offline register: what an artist's phone keeps, and registers sent from it later.

The phone keeps the next `OFFLINE_DAYS` days of the artist's own sessions with only what a
register needs about each person (name, access needs, phone), never NHS numbers or referral
reasons. A register taken without a connection is sent later with the version of the register
it was taken from; if the register was saved by someone else since (an admin's correction),
nothing is overwritten until the artist has seen the difference and chosen. The register
itself is saved by `save_register`, under the same rules as the screen, the CSV and the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from referrals.audit import record
from referrals.auth.models import User
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    SessionStatus,
)
from referrals.courses.queries import sessions_for_user
from referrals.courses.register_rules import RegisterEntry
from referrals.courses.services import (
    RegisterRefused,
    SavedRegister,
    course_days,
    record_wellbeing,
    register_enrolments,
    save_register,
)
from referrals.extensions import db
from referrals.intake.models import Referral
from referrals.outcomes.scoring import Instrument, Timepoint
from referrals.outcomes.timepoints import timepoint_for

OFFLINE_DAYS = 7
# The questionnaire a register can take without a connection.
OFFLINE_INSTRUMENT = Instrument.SWEMWBS


def offline_sessions(user: Any, today: date) -> list[CourseSession]:
    """The artist's own sessions from today to `OFFLINE_DAYS` days ahead, cancelled ones aside:
    those of courses that name them as a lead artist, or that name no lead artist at all. An
    artist taken off a course no longer keeps its registers."""
    query = sessions_for_user(user, today, today + timedelta(days=OFFLINE_DAYS)).where(
        CourseSession.status != SessionStatus.CANCELLED,
        or_(Course.lead_artists.any(User.id == user.id), ~Course.lead_artists.any()),
    )
    return list(db.session.scalars(query))


def register_version(session: CourseSession) -> str:
    """Which save of a register a phone started from: "" while it has never been saved."""
    saved = session.register_saved_at
    return saved.isoformat() if saved is not None else ""


def _mark_json(mark: Attendance | None) -> dict[str, Any] | None:
    if mark is None:
        return None
    return {
        "status": mark.status.value,
        "mood_before": mark.mood_before,
        "mood_after": mark.mood_after,
        "note": mark.note,
    }


def offline_people(session: CourseSession) -> list[dict[str, Any]]:
    """Each person on a session's register with what the register needs, and nothing more."""
    people = register_enrolments(session)
    if people:  # everyone's details in one query, not one per person
        db.session.scalars(
            select(Referral)
            .where(Referral.id.in_([e.referral_id for e in people]))
            .options(selectinload(Referral.patient))
        ).all()
    marks = {a.enrolment_id: a for a in session.attendance}
    days = course_days(people)
    rows = []
    for enrolment in people:
        patient = enrolment.referral.patient
        timepoint = timepoint_for(session.date, days[enrolment.id])
        rows.append(
            {
                "enrolment_id": enrolment.id,
                "name": patient.full_name,
                "given_name": patient.given_name,
                "needs": " ".join(
                    part for part in (patient.access_needs, patient.communication_needs) if part
                ),
                "phone": patient.phone or "",
                "mark": _mark_json(marks.get(enrolment.id)),
                "questionnaire": None
                if timepoint is None
                else {"timepoint": timepoint.value, "label": timepoint.label},
            }
        )
    return rows


@dataclass(frozen=True)
class OfflineQuestionnaire:
    """A SWEMWBS answered at the session, sent with its register."""

    enrolment_id: int
    timepoint: Timepoint
    items: list[int]


class RegisterChanged(Exception):
    """The register was saved by someone else after the phone took its copy."""

    def __init__(self, session: CourseSession, differences: list[dict[str, str]]) -> None:
        super().__init__(
            "This register was changed by someone else after you took it. "
            "Nothing has been overwritten: choose which register to keep"
        )
        self.session = session
        self.differences = differences


def describe_mark(
    status: AttendanceStatus | None, before: int | None, after: int | None, note: str
) -> str:
    """A mark as a person reads it: "Attended, mood 4 to 7, note: …"."""
    if status is None:
        return "Not marked"
    parts = [status.label]
    if before is not None or after is not None:
        parts.append(
            f"mood {'–' if before is None else before} to {'–' if after is None else after}"
        )
    if note.strip():
        parts.append(f"note: {note.strip()}")
    return ", ".join(parts)


def register_differences(
    session: CourseSession, entries: Sequence[RegisterEntry]
) -> list[dict[str, str]]:
    """Person by person, where the register sent differs from the one saved on the server."""
    saved = {a.enrolment_id: a for a in session.attendance}
    names = {e.id: e.referral.patient.full_name for e in register_enrolments(session)}
    differences = []
    for entry in entries:
        mine = describe_mark(entry.status, entry.mood_before, entry.mood_after, entry.note)
        mark = saved.get(entry.enrolment_id)
        theirs = (
            describe_mark(None, None, None, "")
            if mark is None
            else describe_mark(mark.status, mark.mood_before, mark.mood_after, mark.note)
        )
        if mine != theirs:
            differences.append(
                {
                    "enrolment_id": str(entry.enrolment_id),
                    "name": names.get(entry.enrolment_id, "Someone no longer on this register"),
                    "yours": mine,
                    "saved": theirs,
                }
            )
    return differences


def save_offline_register(
    actor: Any,
    session: CourseSession,
    entries: Sequence[RegisterEntry] | None,
    questionnaires: Sequence[OfflineQuestionnaire],
    *,
    based_on: str,
    today: date,
) -> SavedRegister | None:
    """Save a register taken on a phone, unless it was saved by someone else since `based_on`.

    The register goes through `save_register` (the one set of register rules); each
    questionnaire is dated the session's day, through `record_wellbeing`. All or nothing.
    With `entries` None the artist chose to keep the register saved on the server: only the
    questionnaires answered at the session are recorded, and the register is left as it is.
    """
    saved = None
    if entries is not None:
        if register_version(session) != based_on:
            raise RegisterChanged(session, register_differences(session, entries))
        saved = save_register(actor, session, entries, today=today)
    on_register: dict[int, Enrolment] = {e.id: e for e in register_enrolments(session)}
    for index, questionnaire in enumerate(questionnaires):
        enrolment = on_register.get(questionnaire.enrolment_id)
        if enrolment is None:
            raise RegisterRefused(
                "The register has problems; nothing was saved",
                {
                    f"questionnaires.{index}.enrolment_id": [
                        "This person is not on this session's register"
                    ]
                },
            )
        record_wellbeing(
            actor,
            enrolment,
            OFFLINE_INSTRUMENT,
            questionnaire.timepoint,
            questionnaire.items,
            recorded_on=session.date,
            today=today,
        )
    record(
        actor,
        "register.sent_from_device",
        session,
        questionnaires=len(questionnaires),
        register="sent" if entries is not None else "kept_saved",
    )
    return saved


def offline_valid_until(signed_in_at: datetime, absolute_timeout: timedelta) -> datetime:
    """The phone keeps the registers no longer than the sign-in that fetched them lasts."""
    return signed_in_at + absolute_timeout
