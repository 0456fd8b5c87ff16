"""A person's wellbeing over a course: session moods and questionnaire scores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from referrals.courses.models import Attendance, CourseSession, Enrolment
from referrals.extensions import db
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import Instrument, Timepoint


@dataclass(frozen=True)
class SessionMood:
    session_date: date
    sequence: int
    status: str
    mood_before: int | None
    mood_after: int | None


@dataclass(frozen=True)
class WellbeingHistory:
    moods: list[SessionMood]
    assessments: list[WellbeingAssessment]

    def latest(self, instrument: Instrument, timepoint: Timepoint) -> Decimal | None:
        scores = [
            a.metric_score
            for a in self.assessments
            if a.instrument is instrument and a.timepoint is timepoint
        ]
        return scores[-1] if scores else None

    @property
    def swemwbs_change(self) -> Decimal | None:
        baseline = self.latest(Instrument.SWEMWBS, Timepoint.BASELINE)
        end = self.latest(Instrument.SWEMWBS, Timepoint.END)
        return None if baseline is None or end is None else end - baseline


def enrolment_wellbeing(enrolment: Enrolment) -> WellbeingHistory:
    moods = [
        SessionMood(row.date, row.sequence, row.status.value, row.mood_before, row.mood_after)
        for row in db.session.execute(
            select(
                CourseSession.date,
                CourseSession.sequence,
                Attendance.status,
                Attendance.mood_before,
                Attendance.mood_after,
            )
            .join(CourseSession, CourseSession.id == Attendance.session_id)
            .where(Attendance.enrolment_id == enrolment.id)
            .order_by(CourseSession.date)
        )
    ]
    assessments = list(
        db.session.scalars(
            select(WellbeingAssessment)
            .where(WellbeingAssessment.enrolment_id == enrolment.id)
            .order_by(WellbeingAssessment.recorded_on, WellbeingAssessment.id)
        )
    )
    return WellbeingHistory(moods, assessments)
