"""Send the outbound messages that are due: only in the scheduler process or from the command
line, never inside a web request.

Each message is claimed by a conditional UPDATE (`queued` and due -> `sending`) committed
before anything is sent: of several senders only one changes the row, and only that one sends.
A temporary failure puts the message back in the queue with a doubling delay, up to
`OUTBOUND_MAX_ATTEMPTS` tries; a permanent failure, or the last try, records it as failed with
the reason. A message found still `sending` long after its claim (its sender died mid-send) is
recorded as failed rather than sent again: whether it left is unknown, and a person should
never get the same message twice.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, has_request_context
from sqlalchemy import select, update

from referrals.courses.models import CourseSession, Enrolment, EnrolmentStatus, SessionStatus
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from referrals.notifications.backends import (
    Attachment,
    Backend,
    Outgoing,
    PermanentFailure,
    TemporaryFailure,
    configured_backend,
)
from referrals.notifications.models import MessageStatus, OutboundMessage

log = logging.getLogger(__name__)
BATCH = 200
LETTER_ATTACHMENT = "message_back_letter"


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0

    def summary(self) -> str:
        return (
            f"{self.sent} sent, {self.retrying} to retry, {self.failed} failed, "
            f"{self.cancelled} no longer wanted"
        )


def _claim(message_id: int, now: datetime) -> bool:
    result = db.session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == message_id,
            OutboundMessage.status == MessageStatus.QUEUED,
            OutboundMessage.next_attempt_at <= now,
        )
        .values(
            status=MessageStatus.SENDING,
            claimed_at=now,
            claimed_by=socket.gethostname()[:255],
            attempts=OutboundMessage.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return getattr(result, "rowcount", 0) == 1


def session_occasion(session: CourseSession) -> str:
    """A session's date, start time and venue: what its reminder is for, so a session moved
    in any of them is reminded (and its move told) afresh, and a reminder of the old one is
    not sent."""
    return f"{session.date.isoformat()}T{session.start_time:%H%M}@venue:{session.venue.id}"


def still_wanted(message: OutboundMessage) -> str | None:
    """Why a queued message should no longer go, or None: the person asked to stop, or the
    session it is about was cancelled or moved since, or the place offered was answered."""
    if message.patient_id is not None:
        patient = db.session.get(Patient, message.patient_id)
        if patient is None or patient.anonymised_at is not None:
            return "the person's record was pseudonymised"
        if patient.messages_stopped_at is not None:
            return "the person asked for no more messages"
    if message.about_type == "session" and message.kind == "session_reminder":
        session = db.session.get(CourseSession, message.about_id)
        if session is None or session.status is SessionStatus.CANCELLED:
            return "the session was cancelled"
        if not message.dedupe_key.endswith(f"|{session_occasion(session)}"):
            return "the session moved"
    if message.about_type == "enrolment" and message.kind == "waiting_list_place":
        enrolment = db.session.get(Enrolment, message.about_id)
        if enrolment is None or enrolment.status is not EnrolmentStatus.OFFERED:
            return "the place is no longer on offer"
    return None


def _attachments(message: OutboundMessage) -> list[Attachment]:
    if message.attachment != LETTER_ATTACHMENT:
        return []
    # Letters build on the course services, which send through this module.
    from referrals.intake.letters import build_outcome_letter, message_back

    referral = db.session.get(Referral, message.about_id)
    news = message_back(referral) if referral is not None else None
    if referral is None or news is None:
        raise PermanentFailure("the referral has no message back to attach")
    return [Attachment(f"message-back-R{referral.id}.pdf", build_outcome_letter(referral, news))]


def _retry_delay(attempts: int) -> object:
    return current_app.config["OUTBOUND_FIRST_RETRY"] * (2 ** max(attempts - 1, 0))


def _send_one(backend: Backend, message_id: int, report: SendReport) -> None:
    message = db.session.get(OutboundMessage, message_id)
    assert message is not None
    reason = still_wanted(message)
    if reason is not None:
        message.status, message.error = MessageStatus.CANCELLED, reason
        report.cancelled += 1
        db.session.commit()
        return
    try:
        outgoing = Outgoing(
            message.channel,
            message.recipient,
            message.subject,
            message.body,
            reference=f"message-{message.id}",
            attachments=_attachments(message),
        )
        reference = backend.send(outgoing)
    except TemporaryFailure as error:
        db.session.rollback()
        message = db.session.get(OutboundMessage, message_id)
        assert message is not None
        message.error = str(error)[:2000]
        if message.attempts >= current_app.config["OUTBOUND_MAX_ATTEMPTS"]:
            message.status = MessageStatus.FAILED
            message.error = f"Gave up after {message.attempts} tries: {message.error}"
            report.failed += 1
        else:
            message.status = MessageStatus.QUEUED
            message.next_attempt_at = utcnow() + _retry_delay(message.attempts)  # type: ignore[operator]
            report.retrying += 1
        log.warning("outbound message %s: temporary failure: %s", message_id, error)
    except PermanentFailure as error:
        db.session.rollback()
        message = db.session.get(OutboundMessage, message_id)
        assert message is not None
        message.status, message.error = MessageStatus.FAILED, str(error)[:2000]
        report.failed += 1
        log.warning("outbound message %s failed for good", message_id)
    else:
        message.status, message.sent_at = MessageStatus.SENT, utcnow()
        message.provider_reference, message.error = reference[:100], ""
        report.sent += 1
    db.session.commit()


def _give_up_stuck(now: datetime) -> int:
    stuck_before = now - current_app.config["OUTBOUND_STUCK_AFTER"]
    result = db.session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.status == MessageStatus.SENDING,
            OutboundMessage.claimed_at < stuck_before,
        )
        .values(
            status=MessageStatus.FAILED,
            error="Its sender stopped while sending; not sent again, as it may have gone",
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def send_due(*, limit: int = BATCH) -> SendReport:
    """Send every message due now (up to `limit`); the caller's app context, not a request."""
    if has_request_context():
        raise RuntimeError("messages are sent by the scheduler or a command, never a request")
    report = SendReport()
    now = utcnow()
    report.failed += _give_up_stuck(now)
    backend = configured_backend()
    if backend is None:
        return report
    due = db.session.scalars(
        select(OutboundMessage.id)
        .where(
            OutboundMessage.status == MessageStatus.QUEUED,
            OutboundMessage.next_attempt_at <= now,
        )
        .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
        .limit(limit)
    ).all()
    db.session.commit()
    for message_id in due:
        if _claim(message_id, now):
            _send_one(backend, message_id, report)
    return report
