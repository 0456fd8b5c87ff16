"""Pure checks and normalisers for patient details. Each returns the clean value or raises
`InvalidValue` with a message fit to show at the field."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import email_validator
import nhs_number

# The most that may be typed for each value, spaces included, before it is cleaned: what the
# forms and the API both accept.
NHS_NUMBER_TYPED_MAX = 20
POSTCODE_TYPED_MAX = 12
PHONE_TYPED_MAX = 30


class InvalidValue(ValueError):
    pass


def clean_nhs_number(raw: str) -> str:
    """10 digits with a valid modulus 11 check digit; spaces and hyphens are accepted."""
    digits = re.sub(r"[\s-]", "", raw or "")
    if not digits:
        raise InvalidValue("Enter the NHS number")
    if not digits.isdigit() or len(digits) != 10:
        raise InvalidValue("NHS number must be 10 digits")
    if not nhs_number.is_valid(digits):
        raise InvalidValue("This is not a valid NHS number. Check it and try again")
    return digits


def format_nhs_number(digits: str) -> str:
    """NHS numbers are shown 3-3-4: 943 476 5919."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if len(digits) == 10 else digits


# The UK postcode pattern (BS 7666), including GIR 0AA; the inward code is always digit+2 letters.
POSTCODE = re.compile(
    r"^(GIR0AA|[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9]{1,2}|[0-9][A-HJKPSTUW]|[A-HK-Y][0-9][ABEHMNPRVWXY])"
    r"[0-9][ABD-HJLNP-UW-Z]{2})$"
)


def clean_postcode(raw: str) -> str:
    """A UK postcode, upper case with one space before the inward code: `GL1 2AB`."""
    compact = re.sub(r"\s", "", raw or "").upper()
    if not compact:
        raise InvalidValue("Enter the postcode")
    if not POSTCODE.match(compact):
        raise InvalidValue("Enter a real UK postcode, like GL1 2AB")
    return f"{compact[:-3]} {compact[-3:]}"


def clean_date_of_birth(value: date | None, today: date) -> date:
    if value is None:
        raise InvalidValue("Enter the date of birth")
    if value > today:
        raise InvalidValue("Date of birth must be today or in the past")
    if value < _years_before(today, 120):
        raise InvalidValue("Date of birth must be within the last 120 years")
    return value


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


# A UK phone number once spaces, brackets and hyphens are gone, +44 written as 0.
PHONE = re.compile(r"0[0-9]{9,10}")


def clean_phone(raw: str) -> str:
    """A UK phone number: 10 or 11 digits starting 0, or +44; stored without spaces."""
    compact = re.sub(r"[\s()-]", "", raw or "")
    if compact.startswith("+44"):
        compact = "0" + compact[3:].lstrip("0")
    if not PHONE.fullmatch(compact):
        raise InvalidValue("Enter a UK phone number, like 01632 960 001 or 07700 900 982")
    return compact


def age_on(date_of_birth: date, day: date) -> int:
    years = day.year - date_of_birth.year
    return years - ((day.month, day.day) < (date_of_birth.month, date_of_birth.day))


EMAIL_MESSAGE = "Enter an email address in the correct format, like name@example.com"


def clean_email(raw: str) -> str:
    """The referral form's email rule (no deliverability check), lower-cased as the page does."""
    try:
        email_validator.validate_email(raw, check_deliverability=False)
    except email_validator.EmailNotValidError as error:
        raise InvalidValue(EMAIL_MESSAGE) from error
    return raw.lower()


# Rules across a referral's fields. Each returns its refusal as {field: message}, empty when the
# details keep the rule; the referral form and the API both call them.

# The contact detail each preferred way of contact needs; a letter needs neither.
DETAIL_NEEDED_BY = {"phone": "phone", "text": "phone", "email": "email"}
_DETAIL_MISSING = {
    "phone": "Enter a phone number, or choose another way to contact them",
    "email": "Enter an email address, or choose another way to contact them",
}
# The same refusals said to the person themselves, on the public self-referral form.
_YOUR_DETAIL_MISSING = {
    "phone": "Enter a phone number so that we can contact you that way",
    "email": "Enter an email address so that we can contact you that way",
}


def contactable(phone: str | None, email: str | None) -> dict[str, str]:
    """The person can be contacted: a phone number, an email address or both."""
    return {} if phone or email else {"phone": "Enter a phone number or an email address"}


def reachable(
    preferred: str | None, phone: str | None, email: str | None, *, to_the_person: bool = False
) -> dict[str, str]:
    """Their preferred way of contact has the detail it needs; `to_the_person` words the
    refusal for someone referring themselves."""
    needed = DETAIL_NEEDED_BY.get(preferred or "")
    if needed is not None and not {"phone": phone, "email": email}[needed]:
        messages = _YOUR_DETAIL_MISSING if to_the_person else _DETAIL_MISSING
        return {"preferred_contact": messages[needed]}
    return {}


def risk_described(flagged: bool, note: str | None) -> dict[str, str]:
    """A flagged concern or risk is described for the link worker."""
    if flagged and not (note or "").strip():
        return {"risk_note": "Describe the concern or risk"}
    return {}


# The same rules in the API's document, as JSON Schema made from the definitions above.


def _given(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"required": [name], "properties": {name: dict(schema)}}


def contact_schema(ways: Sequence[str], details: Mapping[str, Any]) -> dict[str, Any]:
    """`contactable` and `reachable`: one of the `details` given (each with its schema), and
    the one the preferred way of contact (one of `ways`, or none) needs."""

    def needing(detail: str | None) -> dict[str, Any]:
        allowed: list[Any] = [way for way in ways if DETAIL_NEEDED_BY.get(way) == detail]
        allowed += [None] if detail is None else []
        chosen = {"const": allowed[0]} if len(allowed) == 1 else {"enum": allowed}
        preferred = {"properties": {"preferred_contact": chosen}}
        return (
            preferred if detail is None else {"allOf": [_given(detail, details[detail]), preferred]}
        )

    contact = {"anyOf": [_given(name, schema) for name, schema in details.items()]}
    return {"allOf": [contact, {"anyOf": [needing(detail) for detail in (None, *details)]}]}


def risk_schema(note: Mapping[str, Any]) -> dict[str, Any]:
    """`risk_described`: not flagged, or a note (`note`, its schema) given."""
    return {"anyOf": [{"properties": {"risk_flag": {"const": False}}}, _given("risk_note", note)]}
