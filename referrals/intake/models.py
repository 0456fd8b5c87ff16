"""Patients, referrals, their transitions, contact attempts and conversations."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organisation, User
from referrals.db import TimestampMixin, utcnow
from referrals.extensions import db
from referrals.intake.lifecycle import OPEN_STATUSES, Status
from referrals.text import EMAIL_MAX
from referrals.types import enum_column

if TYPE_CHECKING:
    from referrals.courses.models import Course
from referrals.vocab import (
    ContactMethod,
    ContactOutcome,
    Ethnicity,
    LabelledEnum,
    Pathway,
    ReferrerType,
    Sex,
)

# The key a client sends to make a request safe to repeat (the API's and the offline register's).
IDEMPOTENCY_KEY_MAX = 200


class Patient(TimestampMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    nhs_number: Mapped[str | None] = mapped_column(String(10), unique=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    date_of_birth: Mapped[date | None]
    sex: Mapped[Sex] = mapped_column(enum_column(Sex))
    ethnicity: Mapped[Ethnicity] = mapped_column(enum_column(Ethnicity))
    postcode: Mapped[str | None] = mapped_column(String(8))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX))
    preferred_contact: Mapped[ContactMethod] = mapped_column(enum_column(ContactMethod))
    gp_practice_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    communication_needs: Mapped[str] = mapped_column(Text, default="")
    access_needs: Mapped[str] = mapped_column(Text, default="")
    anonymised_at: Mapped[datetime | None]
    # The person asked the service to stop sending them emails and text messages.
    messages_stopped_at: Mapped[datetime | None]

    gp_practice: Mapped[Organisation] = relationship()
    referrals: Mapped[list[Referral]] = relationship(
        back_populates="patient", order_by="Referral.received_on.desc()"
    )

    __table_args__ = (
        Index("ix_patient_family_name_given_name", "family_name", "given_name"),
        # A "STOP" text is matched to people by the number it came from.
        Index("ix_patient_phone", "phone"),
    )

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class Referral(TimestampMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    gp_practice_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    referred_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    assigned_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    referrer_type: Mapped[ReferrerType] = mapped_column(enum_column(ReferrerType))
    pathway: Mapped[Pathway] = mapped_column(enum_column(Pathway))
    reason: Mapped[str] = mapped_column(Text)
    interests: Mapped[list[str]] = mapped_column(JSON, default=list)
    consent: Mapped[bool]
    risk_flag: Mapped[bool] = mapped_column(default=False)
    risk_note: Mapped[str] = mapped_column(Text, default="")
    received_on: Mapped[date]
    status: Mapped[Status] = mapped_column(enum_column(Status, "referral_status"))
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_contact_at: Mapped[datetime | None]
    closed_on: Mapped[date | None]
    snomed_code: Mapped[str | None] = mapped_column(String(18))
    new_episode_reason: Mapped[str] = mapped_column(Text, default="")
    # The course a person asked to join when they referred themselves from the public finder.
    course_of_interest_id: Mapped[int | None] = mapped_column(
        ForeignKey("course.id", ondelete="SET NULL")
    )

    patient: Mapped[Patient] = relationship(back_populates="referrals")
    gp_practice: Mapped[Organisation] = relationship()
    referred_by: Mapped[User | None] = relationship(foreign_keys=[referred_by_id])
    assigned_to: Mapped[User | None] = relationship(foreign_keys=[assigned_to_id])
    transitions: Mapped[list[ReferralTransition]] = relationship(
        back_populates="referral", order_by="ReferralTransition.id"
    )
    contact_attempts: Mapped[list[ContactAttempt]] = relationship(
        back_populates="referral", order_by="ContactAttempt.id"
    )
    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="referral", order_by="Conversation.id"
    )
    course_of_interest: Mapped[Course | None] = relationship()
    reconciliation: Mapped[PatientReconciliation | None] = relationship(
        back_populates="referral", uselist=False
    )

    __table_args__ = (
        Index("ix_referral_status_received_on", "status", "received_on"),
        Index("ix_referral_gp_practice_id_received_on", "gp_practice_id", "received_on"),
        Index("ix_referral_pathway_received_on", "pathway", "received_on"),
        Index("ix_referral_received_on", "received_on"),
        Index("ix_referral_closed_on", "closed_on"),
        # A link worker's own open referrals, counted without reading the ones long closed.
        Index("ix_referral_assigned_to_id_status", "assigned_to_id", "status"),
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class ReferralTransition(db.Model):  # type: ignore[name-defined]
    """One status change: who, when, from, to and why."""

    __tablename__ = "referral_transition"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[Status | None] = mapped_column(enum_column(Status, "transition_from"))
    to_status: Mapped[Status] = mapped_column(enum_column(Status, "transition_to"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    effective_on: Mapped[date]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    snomed_code: Mapped[str | None] = mapped_column(String(18))

    referral: Mapped[Referral] = relationship(back_populates="transitions")
    actor: Mapped[User | None] = relationship()

    __table_args__ = (
        # A referral's status on a given day (KPIs A2 and A3): its latest change by then, read
        # from the index alone.
        Index(
            "ix_referral_transition_referral_id_effective_on_status",
            "referral_id",
            "effective_on",
            "id",
            "to_status",
        ),
        # The referrals changed in a month (KPI A2).
        Index("ix_referral_transition_effective_on", "effective_on", "referral_id"),
    )


class ContactAttempt(db.Model):  # type: ignore[name-defined]
    __tablename__ = "contact_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    method: Mapped[ContactMethod] = mapped_column(enum_column(ContactMethod, "attempt_method"))
    outcome: Mapped[ContactOutcome] = mapped_column(enum_column(ContactOutcome))
    note: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))

    referral: Mapped[Referral] = relationship(back_populates="contact_attempts")
    actor: Mapped[User | None] = relationship()


class Conversation(db.Model):  # type: ignore[name-defined]
    """The "what matters to you" conversation that assesses a referral."""

    __tablename__ = "conversation"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    held_on: Mapped[date]
    what_matters: Mapped[str] = mapped_column(Text)
    agreed_next_steps: Mapped[str] = mapped_column(Text, default="")
    preferred_art_forms: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    referral: Mapped[Referral] = relationship(back_populates="conversations")
    actor: Mapped[User | None] = relationship()


class IdempotentRequest(db.Model):  # type: ignore[name-defined]
    """The first answer to an API request with an `Idempotency-Key`, replayed on retries."""

    __tablename__ = "idempotent_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX))
    endpoint: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotent_request_user_key"),)


class ReconciliationStatus(LabelledEnum):
    OPEN = "open", "To check"
    RESOLVED = "resolved", "Resolved"


class PatientReconciliation(db.Model):  # type: ignore[name-defined]
    """The person as a referral from outside their practice described them, where that differs
    from the stored record. The stored record is left as it was; a link worker accepts or keeps
    each difference."""

    __tablename__ = "patient_reconciliation"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    # Every detail as sent (JSON values: ISO dates, enum values, the practice's id).
    sent: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The details that differed from the stored record when the referral arrived.
    fields: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[ReconciliationStatus] = mapped_column(enum_column(ReconciliationStatus))
    # For each difference once resolved: "accepted" (the stored record took the sent value) or
    # "kept" (the stored value stayed).
    decisions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    referral: Mapped[Referral] = relationship(back_populates="reconciliation")
    patient: Mapped[Patient] = relationship()
    resolved_by: Mapped[User | None] = relationship()

    __table_args__ = (
        UniqueConstraint("referral_id", name="uq_patient_reconciliation_referral_id"),
        Index("ix_patient_reconciliation_status", "status"),
    )

    @property
    def is_open(self) -> bool:
        return self.status is ReconciliationStatus.OPEN
