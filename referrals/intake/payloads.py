"""Referral and transition requests sent as JSON, checked by the same rules as the page forms.

Each reader returns the cleaned request or raises `InvalidPayload` with messages per field,
named as in the body (`patient.nhs_number`). Nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import email_validator

from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.dates import check_past, check_received, refusal
from referrals.extensions import db
from referrals.forms import has_control_characters
from referrals.intake.forms import NAME_MAX, TEXT_MAX
from referrals.intake.identity import DETAIL_FIELDS
from referrals.intake.lifecycle import Status
from referrals.intake.services import PatientDetails, ReferralDetails, practice_for
from referrals.intake.validation import (
    InvalidValue,
    clean_date_of_birth,
    clean_nhs_number,
    clean_phone,
    clean_postcode,
)
from referrals.vocab import ArtForm, ContactMethod, Ethnicity, Pathway, ReferrerType, Sex

E = TypeVar("E", bound=Any)

# The ways of contacting a person the referral form offers (not "in person").
PREFERRED_CONTACT_CHOICES = (
    ContactMethod.PHONE,
    ContactMethod.EMAIL,
    ContactMethod.TEXT,
    ContactMethod.LETTER,
)
PATIENT_FIELDS = frozenset({"nhs_number", *DETAIL_FIELDS})
REFERRAL_FIELDS = frozenset(
    {
        "patient",
        "gp_practice_id",
        "referrer_type",
        "pathway",
        "reason",
        "interests",
        "consent",
        "risk_flag",
        "risk_note",
        "received_on",
        "new_episode_reason",
    }
)
TRANSITION_FIELDS = frozenset({"to", "reason", "note", "on"})
MAX_ID = 2**31 - 1
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
EMAIL_MESSAGE = "Enter an email address in the correct format, like name@example.com"


class InvalidPayload(ValueError):
    """The request body has invalid fields; `errors` maps each (dotted) field to messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("invalid fields: " + ", ".join(sorted(errors)))
        self.errors = dict(errors)


@dataclass(frozen=True)
class TransitionRequest:
    to: Status
    reason: str
    note: str
    on: date | None


class _Reader:
    """Reads typed fields from one JSON object, collecting a message per bad field."""

    def __init__(
        self, data: Mapping[str, Any], errors: dict[str, list[str]], prefix: str = ""
    ) -> None:
        self.data = data
        self.errors = errors
        self.prefix = prefix

    def fail(self, key: str, message: str) -> None:
        self.errors.setdefault(self.prefix + key, []).append(message)

    def failed(self, key: str) -> bool:
        return (self.prefix + key) in self.errors

    def refuse_unknown(self, known: frozenset[str]) -> None:
        for key in sorted(set(self.data) - known):
            self.fail(key, "Unknown field")

    def text(self, key: str, *, max_length: int, required: str = "", too_long: str = "") -> str:
        """A string, trimmed; empty when absent. `required` is the message when it is empty."""
        value = self.data.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.fail(key, "Must be a string")
            return ""
        value = value.strip()
        if has_control_characters(value):
            self.fail(key, "Must not contain control characters")
            return ""
        if not value and required:
            self.fail(key, required)
        elif len(value) > max_length:
            self.fail(key, too_long or f"Must be {max_length} characters or fewer")
            return ""
        return value

    def cleaned(
        self, key: str, cleaner: Callable[[str], str], *, max_length: int, required: str = ""
    ) -> str:
        """A string run through one of the validation cleaners; empty when absent."""
        value = self.text(key, max_length=max_length, required=required)
        if not value:
            return ""
        try:
            return cleaner(value)
        except InvalidValue as error:
            self.fail(key, str(error))
            return ""

    def choice(
        self,
        key: str,
        vocabulary: type[E],
        *,
        required: str = "",
        among: Iterable[E] | None = None,
    ) -> E | None:
        """A member of an enum (or of `among`, a subset), given as its stored value."""
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                self.fail(key, required)
            return None
        allowed = [member.value for member in (vocabulary if among is None else among)]
        if not isinstance(value, str) or value not in allowed:
            self.fail(key, "Choose one of: " + ", ".join(allowed))
            return None
        return vocabulary(value)

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(key, "Must be true or false")
            return None
        return value

    def day(self, key: str) -> date | None:
        """A date written `YYYY-MM-DD`."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not _ISO_DATE.match(value):
            self.fail(key, "Enter a date as YYYY-MM-DD, for example 1948-03-15")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(key, "Enter a real date as YYYY-MM-DD, for example 1948-03-15")
            return None

    def identifier(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
            self.fail(key, "Must be the id of a record, a whole number")
            return None
        return value

    def nested(self, key: str, missing: str) -> _Reader | None:
        value = self.data.get(key)
        if value is None:
            self.fail(key, missing)
            return None
        if not isinstance(value, dict):
            self.fail(key, "Must be an object")
            return None
        return _Reader(value, self.errors, f"{self.prefix}{key}.")


def _object(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidPayload({"body": ["Send a JSON object"]})
    return payload


def clean_email(raw: str) -> str:
    """The referral form's email rule (no deliverability check), lower-cased as the page does."""
    try:
        email_validator.validate_email(raw, check_deliverability=False)
    except email_validator.EmailNotValidError as error:
        raise InvalidValue(EMAIL_MESSAGE) from error
    return raw.lower()


def _patient_details(fields: _Reader, *, today: date) -> PatientDetails | None:
    """The person's details, or None when any of them is invalid (the reasons are recorded)."""
    errors_before = len(fields.errors)
    fields.refuse_unknown(PATIENT_FIELDS)
    nhs_number = fields.cleaned(
        "nhs_number", clean_nhs_number, max_length=20, required="Enter the NHS number"
    )
    given_name = fields.text(
        "given_name",
        max_length=NAME_MAX,
        required="Enter the first name",
        too_long="First name must be 100 characters or fewer",
    )
    family_name = fields.text(
        "family_name",
        max_length=NAME_MAX,
        required="Enter the last name",
        too_long="Last name must be 100 characters or fewer",
    )
    born = fields.day("date_of_birth")
    if not fields.failed("date_of_birth"):
        try:
            born = clean_date_of_birth(born, today)
        except InvalidValue as error:
            fields.fail("date_of_birth", str(error))
    sex = fields.choice("sex", Sex, required="Select sex")
    ethnicity = fields.choice(
        "ethnicity", Ethnicity, required="Select an ethnic group or Not stated"
    )
    postcode = fields.cleaned(
        "postcode", clean_postcode, max_length=12, required="Enter the postcode"
    )
    phone = fields.cleaned("phone", clean_phone, max_length=30)
    email = fields.cleaned("email", clean_email, max_length=254)
    if not fields.failed("phone") and not fields.failed("email") and not (phone or email):
        fields.fail("phone", "Enter a phone number or an email address")
    preferred = fields.choice("preferred_contact", ContactMethod, among=PREFERRED_CONTACT_CHOICES)
    if preferred in (ContactMethod.PHONE, ContactMethod.TEXT) and not phone:
        fields.fail(
            "preferred_contact", "Enter a phone number, or choose another way to contact them"
        )
    elif preferred is ContactMethod.EMAIL and not email:
        fields.fail(
            "preferred_contact", "Enter an email address, or choose another way to contact them"
        )
    communication_needs = fields.text("communication_needs", max_length=TEXT_MAX)
    access_needs = fields.text("access_needs", max_length=TEXT_MAX)

    if len(fields.errors) > errors_before:
        return None
    assert born is not None and sex is not None and ethnicity is not None
    return PatientDetails(
        nhs_number=nhs_number,
        given_name=given_name,
        family_name=family_name,
        date_of_birth=born,
        sex=sex,
        ethnicity=ethnicity,
        postcode=postcode,
        phone=phone or None,
        email=email or None,
        preferred_contact=preferred or (ContactMethod.PHONE if phone else ContactMethod.EMAIL),
        communication_needs=communication_needs,
        access_needs=access_needs,
    )


def _interests(fields: _Reader) -> list[ArtForm]:
    value = fields.data.get("interests")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        fields.fail("interests", "Must be a list of art forms")
        return []
    allowed = ArtForm._value2member_map_
    unknown = [item for item in value if item not in allowed]
    if unknown:
        fields.fail(
            "interests",
            f"Unknown art form {unknown[0][:40]!r}. Choose from: " + ", ".join(allowed),
        )
        return []
    return [ArtForm(item) for item in dict.fromkeys(value)]


def _gp_practice(fields: _Reader, actor: User) -> Organisation | None:
    """Referrers refer for their own practice; others name an active GP practice."""
    requested_id = fields.identifier("gp_practice_id")
    if fields.failed("gp_practice_id"):
        return None
    if actor.role == Role.REFERRER:
        if requested_id is not None and requested_id != actor.organisation_id:
            fields.fail(
                "gp_practice_id",
                "You refer for your own practice. Leave this out or send your practice's id",
            )
            return None
        return practice_for(actor, None)
    if requested_id is None:
        fields.fail("gp_practice_id", "Select the person's GP practice")
        return None
    practice = db.session.get(Organisation, requested_id)
    if practice is None or practice.kind != OrganisationKind.GP_PRACTICE or not practice.active:
        fields.fail("gp_practice_id", "Must be the id of an active GP practice")
        return None
    return practice_for(actor, practice)


def referral_details(actor: User, payload: Any, *, today: date) -> ReferralDetails:
    """The body of `POST /referrals` as the details `create_referral` records."""
    errors: dict[str, list[str]] = {}
    fields = _Reader(_object(payload), errors)
    fields.refuse_unknown(REFERRAL_FIELDS)
    person = fields.nested("patient", "Enter the person's details")
    patient = _patient_details(person, today=today) if person else None
    practice = _gp_practice(fields, actor)
    referrer_type = fields.choice("referrer_type", ReferrerType, required="Select who is referring")
    pathway = fields.choice("pathway", Pathway, required="Select a pathway")
    reason = fields.text("reason", max_length=TEXT_MAX, required="Enter the reason for referral")
    interests = _interests(fields)
    consent = fields.boolean("consent")
    if not fields.failed("consent") and consent is not True:
        fields.fail("consent", "Confirm the person agrees to be referred")
    risk_flag = bool(fields.boolean("risk_flag"))
    risk_note = fields.text("risk_note", max_length=TEXT_MAX)
    if risk_flag and not risk_note and not fields.failed("risk_note"):
        fields.fail("risk_note", "Describe the concern or risk")
    received_on = fields.day("received_on")
    if received_on is not None and (refused := refusal(check_received, received_on, today)):
        fields.fail(refused.field, str(refused))
    new_episode_reason = fields.text("new_episode_reason", max_length=TEXT_MAX)

    if errors:
        raise InvalidPayload(errors)
    assert patient is not None and practice is not None
    assert referrer_type is not None and pathway is not None
    return ReferralDetails(
        patient=patient,
        gp_practice=practice,
        referrer_type=referrer_type,
        pathway=pathway,
        reason=reason,
        interests=interests,
        consent=True,
        risk_flag=risk_flag,
        risk_note=risk_note,
        received_on=received_on,
        new_episode_reason=new_episode_reason,
    )


def transition_request(
    payload: Any, *, today: date, received_on: date | None = None
) -> TransitionRequest:
    """The body of `POST /referrals/{id}/transitions`. Whether the move is allowed is the
    lifecycle's decision, made when it is applied."""
    errors: dict[str, list[str]] = {}
    fields = _Reader(_object(payload), errors)
    fields.refuse_unknown(TRANSITION_FIELDS)
    to = fields.choice("to", Status, required="Select the new status")
    reason = fields.text("reason", max_length=TEXT_MAX)
    note = fields.text("note", max_length=TEXT_MAX)
    on = fields.day("on")
    if on is not None and (refused := refusal(check_past, on, today, field="on")):
        fields.fail(refused.field, str(refused))
    elif on is not None and received_on is not None and on < received_on:
        fields.fail("on", "The date must be on or after the date the referral was received")
    if errors:
        raise InvalidPayload(errors)
    assert to is not None
    return TransitionRequest(to=to, reason=reason, note=note, on=on)
