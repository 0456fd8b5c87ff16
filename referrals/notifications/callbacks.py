"""What GOV.UK Notify tells the service by callback: a text message a person sent to the
service's number, and the delivery receipt of a message the service sent.

Notify posts JSON to the URLs set on its Callbacks page, with the bearer token set there in
the `Authorization` header; the views check the token, these functions read the JSON.

- A received text that says STOP (or STOP ALL), whatever its case and spacing, stops every
  email and text to each person with the number it came from, exactly as the link in an email
  does (`outbound.stop_messages`). Any other text is not read or kept: the messages tell
  people to contact their link worker instead.
- A delivery receipt moves the message it names from `sent` to `delivered`, or to `failed`
  with Notify's reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from referrals.extensions import db
from referrals.intake.models import Patient
from referrals.notifications.models import MessageStatus, OutboundMessage
from referrals.notifications.outbound import stop_messages

# UK mobile convention (the mobile networks' and the Phone-paid Services Authority's codes):
# STOP ends messages from a sender; STOP ALL every sender's. Both mean stop here.
STOP_WORDS = frozenset({"STOP", "STOP ALL", "STOPALL"})

# Notify's final statuses for email and text messages, and what each means for the message.
RECEIPT_FAILURES = {
    "permanent-failure": (
        "GOV.UK Notify could not deliver it: the address or number does not exist or does "
        "not take messages"
    ),
    "temporary-failure": (
        "GOV.UK Notify could not deliver it for 72 hours: the phone was off or the inbox full"
    ),
    "technical-failure": "GOV.UK Notify had a technical failure and did not send it",
}
DELIVERED = "delivered"
OUR_REFERENCE = re.compile(r"message-(\d{1,18})")


class BadCallback(ValueError):
    """The callback's JSON is not what Notify sends."""


def _text(payload: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = payload.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadCallback(f"{key} must be text")
    return value


def is_stop_request(message: str) -> bool:
    """Whether a text asks to stop: STOP or STOP ALL alone, any case, spacing or final stop."""
    words = " ".join(message.upper().split()).rstrip(".!")
    return words in STOP_WORDS


def national_number(number: str) -> str | None:
    """A UK number as the service stores it (07700900123), from Notify's 447700900123 or any
    spacing of it; None if it is not a UK number."""
    digits = re.sub(r"\D", "", number)
    if digits.startswith("44"):
        digits = "0" + digits[2:]
    return digits if re.fullmatch(r"0\d{9,10}", digits) else None


def received_text(payload: Mapping[str, Any]) -> int:
    """Act on a text a person sent to the service's number; returns how many people it
    stopped messages to (several people may share a number)."""
    source = _text(payload, "source_number")
    message = _text(payload, "message", required=False)
    if not is_stop_request(message):
        return 0
    number = national_number(source)
    if number is None:
        return 0
    people = db.session.scalars(
        select(Patient).where(Patient.phone == number, Patient.anonymised_at.is_(None))
    )
    return sum(stop_messages(person, asked_by="text STOP") for person in people)


def delivery_receipt(payload: Mapping[str, Any]) -> bool:
    """Record Notify's final word on a message it was given; returns whether one changed.

    The message is found by the reference the service gave it (`message-ID`) and must carry
    Notify's id for it, unless its sender stopped before recording that id (the message was
    recorded as failed, and the receipt now says how it went)."""
    notification_id = _text(payload, "id")
    status = _text(payload, "status")
    found = OUR_REFERENCE.fullmatch(_text(payload, "reference", required=False))
    if found is None or (status != DELIVERED and status not in RECEIPT_FAILURES):
        return False
    message = db.session.get(OutboundMessage, int(found.group(1)))
    if (
        message is None
        or message.provider_reference not in ("", notification_id)
        or message.status not in (MessageStatus.SENT, MessageStatus.FAILED)
    ):
        return False
    message.provider_reference = notification_id[:100]
    if status == DELIVERED:
        message.status, message.error = MessageStatus.DELIVERED, ""
    else:
        message.status, message.error = MessageStatus.FAILED, RECEIPT_FAILURES[status]
    return True
