"""Wellbeing questionnaires recorded for an enrolment."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Index, Numeric
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.courses.models import Enrolment
from referrals.db import utcnow
from referrals.extensions import db
from referrals.outcomes.scoring import Instrument, Timepoint
from referrals.types import enum_column


class WellbeingAssessment(db.Model):  # type: ignore[name-defined]
    __tablename__ = "wellbeing_assessment"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolment.id", ondelete="CASCADE"))
    instrument: Mapped[Instrument] = mapped_column(enum_column(Instrument))
    timepoint: Mapped[Timepoint] = mapped_column(enum_column(Timepoint))
    items: Mapped[list[int]] = mapped_column(JSON)
    raw_score: Mapped[int]
    metric_score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    recorded_on: Mapped[date]
    recorded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    enrolment: Mapped[Enrolment] = relationship()

    __table_args__ = (
        Index("ix_wellbeing_assessment_enrolment", "enrolment_id", "instrument", "timepoint"),
    )
