"""In-app notifications (to one user or a whole organisation, read state per user), and the
queue of outbound email and text messages."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from referrals.db import utcnow
from referrals.extensions import db
from referrals.types import enum_column


class Notification(db.Model):  # type: ignore[name-defined]
    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(40), default="general")
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "(user_id IS NOT NULL) OR (organisation_id IS NOT NULL)", name="has_recipient"
        ),
        Index("ix_notification_user_id_created_at", "user_id", "created_at"),
        Index("ix_notification_organisation_id_created_at", "organisation_id", "created_at"),
    )


class NotificationRead(db.Model):  # type: ignore[name-defined]
    __tablename__ = "notification_read"

    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notification.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    read_at: Mapped[datetime] = mapped_column(default=utcnow)


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MessageStatus(enum.StrEnum):
    """Where an outbound message stands. Only the sender moves `queued` to `sending` (one
    sender wins each message), and `sending` to `sent`, back to `queued` for a retry, or to
    `failed`; `cancelled` is a message no longer wanted when its turn came. GOV.UK Notify's
    delivery receipts move a sent message on to `delivered`, or to `failed` with its reason."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboundMessage(db.Model):  # type: ignore[name-defined]
    """An email or text message to send, queued by the service and sent by the scheduler.

    `dedupe_key` names the (kind, recipient, subject object, occasion) it is for; its unique
    index lets the same message be queued only once, however many processes try.
    """

    __tablename__ = "outbound_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "outbound_channel"))
    recipient: Mapped[str] = mapped_column(String(254))
    dedupe_key: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    # Which service object it is about, so a message no longer true is not sent.
    about_type: Mapped[str] = mapped_column(String(30), default="")
    about_id: Mapped[int | None]
    attachment: Mapped[str] = mapped_column(String(40), default="")
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[MessageStatus] = mapped_column(
        enum_column(MessageStatus, "outbound_status"), default=MessageStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str] = mapped_column(String(255), default="")
    sent_at: Mapped[datetime | None]
    error: Mapped[str] = mapped_column(Text, default="")
    provider_reference: Mapped[str] = mapped_column(String(100), default="")

    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_outbound_message_dedupe_key"),
        Index("ix_outbound_message_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbound_message_created_at", "created_at"),
    )
