"""Queue outbound email and text messages, and decide who may get what by which channel.

Services queue messages inside their own unit of work (a request, a job, a command); only
the scheduler process and `referrals notifications send` send them (`sending.py`). A message's
dedupe key is its (kind, recipient, subject object, occasion): the unique index on it lets one
of several processes queue it, and the others' inserts do nothing.

The rules of who is written to, and how, live here once:

- a participant gets email only if they chose email and gave an address, a text message only
  if they chose text, gave a number and GOV.UK Notify is configured; never if they chose
  letter, phone or in person, never without consent on their referral, never once they asked
  to stop, never once pseudonymised;
- staff get email for the kinds they have not turned off;
- a practice gets email at its shared mailbox, when it has one;
- with no back-end configured nothing is queued: in-app messages only; nor while a past is
  being loaded (`loading_history`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.dialects import postgresql, sqlite

from referrals.audit import record
from referrals.auth.models import Organisation, User
from referrals.dates import MONTH_NAMES
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from referrals.notifications.models import Channel, OutboundMessage
from referrals.notifications.wording import PARTICIPANT_KINDS, render, staff_kinds_for
from referrals.vocab import ContactMethod

NOTIFY = "notify"
SMTP = "smtp"
_STOP_SALT = "stop-messages"
_OFFER_SALT = "place-offer"
_loading_history: ContextVar[bool] = ContextVar("loading_history", default=False)


@contextmanager
def loading_history() -> Iterator[None]:
    """While a past is loaded through the services (the demo's year), queue nothing: what
    happened then is not news to anyone now. What is still due afterwards is queued by the
    clock (`messages.queue_time_due`): tomorrow's reminders, a place still on offer."""
    token = _loading_history.set(True)
    try:
        yield
    finally:
        _loading_history.reset(token)


def backend_name() -> str | None:
    """Which back-end sends: GOV.UK Notify when its key is set, else SMTP, else none."""
    config = current_app.config
    if config.get("NOTIFY_API_KEY"):
        return NOTIFY
    if config.get("MAIL_SERVER"):
        return SMTP
    return None


def channels() -> frozenset[Channel]:
    """The channels the configured back-end can send by; none while loading history."""
    if _loading_history.get():
        return frozenset()
    name = backend_name()
    if name == NOTIFY:
        config = current_app.config
        found = set()
        if config.get("NOTIFY_EMAIL_TEMPLATE_ID"):
            found.add(Channel.EMAIL)
        if config.get("NOTIFY_SMS_TEMPLATE_ID"):
            found.add(Channel.SMS)
        return frozenset(found)
    if name == SMTP:
        return frozenset({Channel.EMAIL})
    return frozenset()


@dataclass(frozen=True)
class Address:
    """Where one person's (or one mailbox's) message goes, and who that is."""

    channel: Channel
    recipient: str
    key: str  # who, for the dedupe key: patient:ID, user:ID or organisation:ID
    patient_id: int | None = None
    user_id: int | None = None


def participant_address(referral: Referral) -> Address | None:
    """How a participant may be written to, or None: their choice, consent and opt-out."""
    patient = referral.patient
    if (
        not referral.consent
        or patient.anonymised_at is not None
        or patient.messages_stopped_at is not None
    ):
        return None
    available = channels()
    key = f"patient:{patient.id}"
    chose = patient.preferred_contact
    if chose is ContactMethod.EMAIL and patient.email and Channel.EMAIL in available:
        return Address(Channel.EMAIL, patient.email, key, patient_id=patient.id)
    if chose is ContactMethod.TEXT and patient.phone and Channel.SMS in available:
        return Address(Channel.SMS, patient.phone, key, patient_id=patient.id)
    return None


def staff_address(user: User, kind: str) -> Address | None:
    if not user.active or kind in (user.email_opt_outs or []) or Channel.EMAIL not in channels():
        return None
    return Address(Channel.EMAIL, user.email, f"user:{user.id}", user_id=user.id)


def email_choices(user: User) -> dict[str, bool]:
    """Each email `user`'s role may get, and whether they get it."""
    stopped = set(user.email_opt_outs or [])
    return {kind: kind not in stopped for kind in staff_kinds_for(user.role)}


def choose_emails(user: User, wanted: Iterable[str]) -> bool:
    """Turn off every email of `user`'s role not in `wanted` (they still arrive in-app), and
    back on those in it; choices about kinds outside their role are kept. Audited; returns
    whether anything changed."""
    offered = staff_kinds_for(user.role)
    keep = {kind for kind in user.email_opt_outs or [] if kind not in offered}
    opt_outs = sorted(keep | (set(offered) - set(wanted)))
    if opt_outs == sorted(user.email_opt_outs or []):
        return False
    user.email_opt_outs = opt_outs
    record(user, "account.email_choices", user, opted_out=opt_outs)
    return True


def practice_address(practice: Organisation) -> Address | None:
    if not practice.shared_mailbox or Channel.EMAIL not in channels():
        return None
    return Address(Channel.EMAIL, practice.shared_mailbox, f"organisation:{practice.id}")


def dedupe_key(kind: str, to: Address, about: tuple[str, int], occasion: str) -> str:
    return f"{kind}|{to.key}|{about[0]}:{about[1]}|{occasion}"[:300]


def queue(
    kind: str,
    to: Address,
    *,
    about: tuple[str, int],
    occasion: str,
    context: dict[str, Any],
    attachment: str = "",
    send_after: datetime | None = None,
) -> bool:
    """Queue one message unless the same (kind, recipient, object, occasion) already is.

    Returns whether this call queued it. A kind with no SMS wording is never texted.
    """
    if to.patient_id is not None:
        context = {**context, "stop_url": stop_url(to.patient_id)}
    wording = render(kind, context)
    if to.channel is Channel.SMS:
        if wording.sms is None or kind not in PARTICIPANT_KINDS:
            return False
        body, subject = wording.sms, ""
    else:
        body, subject = wording.email, wording.subject
    values = {
        "kind": kind,
        "channel": to.channel,
        "recipient": to.recipient,
        "dedupe_key": dedupe_key(kind, to, about, occasion),
        "subject": subject,
        "body": body,
        "about_type": about[0],
        "about_id": about[1],
        "attachment": attachment,
        "patient_id": to.patient_id,
        "user_id": to.user_id,
        "next_attempt_at": send_after or utcnow(),
    }
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(OutboundMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboundMessage.id)
    )
    # RETURNING, not the row count: PostgreSQL's driver does not report it for this insert.
    return db.session.execute(statement).first() is not None


# Opting out ----------------------------------------------------------------------------


def _stop_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_STOP_SALT)


def stop_token(patient_id: int) -> str:
    return _stop_serializer().dumps(patient_id)


def stop_url(patient_id: int) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/messages/stop/{stop_token(patient_id)}"


def patient_for_stop_token(token: str) -> Patient | None:
    try:
        patient_id = _stop_serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(patient_id, int):
        return None
    return db.session.get(Patient, patient_id)


def stop_messages(patient: Patient, *, asked_by: str) -> bool:
    """The person asked to get no more emails or texts, by the link in an email or by
    texting STOP (`asked_by` says which); queued ones are not sent. Audited; returns whether
    this changed anything."""
    if patient.messages_stopped_at is not None:
        return False
    patient.messages_stopped_at = utcnow()
    record(None, "patient.messages_stopped", patient, asked_by=asked_by)
    return True


# Answering a place offered ------------------------------------------------------------


def _offer_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_OFFER_SALT)


def offer_url(enrolment_id: int) -> str:
    """Where the person offered a place accepts or declines it: a signed token for the
    enrolment (never a name or NHS number)."""
    token = _offer_serializer().dumps(enrolment_id)
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + f"/messages/offer/{token}"


def enrolment_id_for_offer_token(token: str) -> int | None:
    try:
        enrolment_id = _offer_serializer().loads(token)
    except BadSignature:
        return None
    return enrolment_id if isinstance(enrolment_id, int) else None


# Wording helpers -----------------------------------------------------------------------


def day_text(day: date) -> str:
    """Tuesday 3 March."""
    return f"{day:%A} {day.day} {MONTH_NAMES[day.month - 1]}"


def when_text(day: date, at: time) -> str:
    """Tuesday 3 March, 10:00."""
    return f"{day_text(day)}, {at:%H:%M}"


def link(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path
