"""Contracts, venues, courses, their dated sessions, enrolments and attendance."""

from __future__ import annotations

import datetime as dt
import enum
from datetime import date, datetime, time

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organisation, User
from referrals.courses.schedule import Frequency
from referrals.db import PublicIdMixin, TimestampMixin, utcnow
from referrals.extensions import db
from referrals.intake.models import Referral
from referrals.types import enum_column
from referrals.vocab import ArtForm


class SessionStatus(enum.StrEnum):
    PLANNED = "planned"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class EnrolmentStatus(enum.StrEnum):
    """Where a person stands on a course. `offered`: a place came up from the waiting list and
    is held for them until they accept it, decline it, or let its date to answer by pass. An
    offered person holds a place but is not enrolled."""

    WAITLISTED = "waitlisted"
    OFFERED = "offered"
    ENROLLED = "enrolled"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {"waitlisted": "On the waiting list", "offered": "Offered a place"}.get(
            self.value, self.value.capitalize()
        )


ACTIVE_ENROLMENT = (EnrolmentStatus.WAITLISTED, EnrolmentStatus.OFFERED, EnrolmentStatus.ENROLLED)
# Those who take up one of a course's places: every count of places taken or left uses this.
HOLDS_PLACE = (EnrolmentStatus.OFFERED, EnrolmentStatus.ENROLLED)


class AttendanceStatus(enum.StrEnum):
    ATTENDED = "attended"
    APOLOGIES = "apologies"
    NO_SHOW = "no_show"

    @property
    def label(self) -> str:
        return {"attended": "Attended", "apologies": "Apologies", "no_show": "No show"}[self.value]


class Contract(TimestampMixin, db.Model):  # type: ignore[name-defined]
    """A commissioner's agreement that funds courses, with monthly KPI targets."""

    __tablename__ = "contract"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    commissioner_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    start_date: Mapped[date]
    end_date: Mapped[date]
    # {"B1": {"minimum": 40, "expected": 50, "stretch": 60}, ...}
    # {"B1": {"month": {"minimum": 30, "expected": 35, "stretch": 45}, "year_to_date": ...}}
    targets: Mapped[dict[str, dict[str, dict[str, float]]]] = mapped_column(JSON, default=dict)
    # What the contract is worth over its whole term, in pence; None when not recorded.
    value_pence: Mapped[int | None] = mapped_column(BigInteger)

    commissioner: Mapped[Organisation] = relationship()
    courses: Mapped[list[Course]] = relationship(back_populates="contract")

    __table_args__ = (
        CheckConstraint("end_date >= start_date", name="dates_in_order"),
        CheckConstraint("value_pence >= 0", name="value_not_negative"),
    )


class Venue(PublicIdMixin, TimestampMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "venue"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text)
    postcode: Mapped[str] = mapped_column(String(8), index=True)
    accessibility: Mapped[str] = mapped_column(Text, default="")


course_artist = Table(
    "course_artist",
    db.metadata,
    Column("course_id", ForeignKey("course.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True),
    # An artist's courses: their home page and registers.
    Index("ix_course_artist_user_id", "user_id"),
)


class Course(PublicIdMixin, TimestampMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "course"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    art_form: Mapped[ArtForm] = mapped_column(enum_column(ArtForm), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"), index=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venue.id"))
    pathways: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_age: Mapped[int | None]
    max_age: Mapped[int | None]
    capacity: Mapped[int]
    # What the contract pays the provider for one session: never a charge to the participant.
    cost_per_session_pence: Mapped[int] = mapped_column(default=0)
    # What a participant pays per session, shown to people and published; None means free.
    participant_fee_pence: Mapped[int | None]
    start_date: Mapped[date]
    start_time: Mapped[time]
    duration_minutes: Mapped[int]
    frequency: Mapped[Frequency] = mapped_column(enum_column(Frequency))
    session_count: Mapped[int]
    taster_count: Mapped[int] = mapped_column(default=0)

    provider: Mapped[Organisation] = relationship()
    contract: Mapped[Contract] = relationship(back_populates="courses")
    venue: Mapped[Venue] = relationship()
    lead_artists: Mapped[list[User]] = relationship(secondary=course_artist)
    sessions: Mapped[list[CourseSession]] = relationship(
        back_populates="course", order_by="CourseSession.date, CourseSession.start_time"
    )
    enrolments: Mapped[list[Enrolment]] = relationship(back_populates="course")

    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("cost_per_session_pence >= 0", name="cost_not_negative"),
        CheckConstraint("participant_fee_pence >= 0", name="participant_fee_not_negative"),
        Index("ix_course_contract_id_start_date", "contract_id", "start_date"),
    )


class CourseSession(db.Model):  # type: ignore[name-defined]
    """One dated meeting of a course."""

    __tablename__ = "course_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    sequence: Mapped[int]
    date: Mapped[dt.date]
    start_time: Mapped[time]
    duration_minutes: Mapped[int]
    is_taster: Mapped[bool] = mapped_column(default=False)
    status: Mapped[SessionStatus] = mapped_column(
        enum_column(SessionStatus), default=SessionStatus.PLANNED
    )
    moved_from: Mapped[dt.date | None]
    # Set when this one session meets somewhere other than the course's venue.
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venue.id"))
    cancelled_reason: Mapped[str] = mapped_column(Text, default="")
    register_saved_at: Mapped[datetime | None]
    register_saved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    course: Mapped[Course] = relationship(back_populates="sessions")
    attendance: Mapped[list[Attendance]] = relationship(back_populates="session")
    moved_venue: Mapped[Venue | None] = relationship()

    @property
    def venue(self) -> Venue:
        """Where this session meets: its own venue if it moved to one, else the course's."""
        return self.moved_venue or self.course.venue

    __table_args__ = (
        Index("ix_course_session_course_id_date", "course_id", "date"),
        # The directory's courses still to run: read from this index alone.
        Index("ix_course_session_date_status_course_id", "date", "status", "course_id"),
    )


class Enrolment(db.Model):  # type: ignore[name-defined]
    """A referral placed on a course, or on its waiting list."""

    __tablename__ = "enrolment"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"))
    status: Mapped[EnrolmentStatus] = mapped_column(enum_column(EnrolmentStatus))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Waiting-list order: earliest first.
    waitlisted_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime | None]
    # An offered place passes to the next person if not accepted by the end of this day.
    offer_expires_on: Mapped[dt.date | None]
    completed_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_reason: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    course: Mapped[Course] = relationship(back_populates="enrolments")
    referral: Mapped[Referral] = relationship()
    attendance: Mapped[list[Attendance]] = relationship(back_populates="enrolment")

    __table_args__ = (
        UniqueConstraint("course_id", "referral_id", name="uq_enrolment_course_referral"),
        Index("ix_enrolment_course_id_status", "course_id", "status"),
        Index("ix_enrolment_referral_id", "referral_id"),
        Index("ix_enrolment_status_offer_expires_on", "status", "offer_expires_on"),
    )


class Attendance(db.Model):  # type: ignore[name-defined]
    """One participant at one delivered session."""

    __tablename__ = "attendance"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("course_session.id", ondelete="CASCADE"))
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolment.id", ondelete="CASCADE"))
    status: Mapped[AttendanceStatus] = mapped_column(enum_column(AttendanceStatus))
    mood_before: Mapped[int | None]
    mood_after: Mapped[int | None]
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    session: Mapped[CourseSession] = relationship(back_populates="attendance")
    enrolment: Mapped[Enrolment] = relationship(back_populates="attendance")

    __table_args__ = (
        UniqueConstraint("session_id", "enrolment_id", name="uq_attendance_session_enrolment"),
        # An enrolment's attended sessions, read from the index alone.
        Index(
            "ix_attendance_enrolment_id_status_session_id", "enrolment_id", "status", "session_id"
        ),
        # A session's records with what the KPI engine counts, read from the index alone.
        Index(
            "ix_attendance_session_id_records",
            "session_id",
            "enrolment_id",
            "status",
            "mood_before",
            "mood_after",
        ),
        CheckConstraint(
            "mood_before IS NULL OR (mood_before BETWEEN 0 AND 10)", name="mood_before"
        ),
        CheckConstraint("mood_after IS NULL OR (mood_after BETWEEN 0 AND 10)", name="mood_after"),
    )
