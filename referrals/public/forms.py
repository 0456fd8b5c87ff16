"""The self-referral form. It validates; `public.services` writes."""

from __future__ import annotations

from datetime import date
from typing import Any

from wtforms import BooleanField, HiddenField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional, ValidationError

from referrals.forms import Form, StrippedStringField, UKDateField
from referrals.intake.forms import NAME_MAX, _cleaned_by
from referrals.intake.validation import (
    InvalidValue,
    clean_date_of_birth,
    clean_nhs_number,
    clean_phone,
    clean_postcode,
)
from referrals.vocab import ContactMethod, Pathway

HOPES_MAX = 2000
NEEDS_MAX = 1000


class SelfReferralForm(Form):
    given_name = StrippedStringField(
        "First name",
        validators=[
            DataRequired("Enter your first name"),
            Length(max=NAME_MAX, message="First name must be 100 characters or fewer"),
        ],
    )
    family_name = StrippedStringField(
        "Last name",
        validators=[
            DataRequired("Enter your last name"),
            Length(max=NAME_MAX, message="Last name must be 100 characters or fewer"),
        ],
    )
    date_of_birth = UKDateField("Date of birth")
    nhs_number = StrippedStringField(
        "NHS number (optional)",
        validators=[Optional(), Length(max=20), _cleaned_by(clean_nhs_number)],
    )
    postcode = StrippedStringField(
        "Postcode",
        validators=[
            DataRequired("Enter your postcode"),
            Length(max=12),
            _cleaned_by(clean_postcode),
        ],
    )
    gp_practice = SelectField("Your GP practice", coerce=str)
    phone = StrippedStringField(
        "Phone number", validators=[Optional(), Length(max=30), _cleaned_by(clean_phone)]
    )
    email = StrippedStringField(
        "Email address",
        validators=[
            Optional(),
            Length(max=254),
            Email(
                "Enter an email address in the correct format, like name@example.com",
                check_deliverability=False,
            ),
        ],
    )
    preferred_contact = RadioField(
        "How should we contact you?",
        choices=[
            SelectChoice(m.value, m.label)
            for m in (ContactMethod.PHONE, ContactMethod.TEXT, ContactMethod.EMAIL)
        ],
        default=ContactMethod.PHONE.value,
        validators=[InputRequired("Select how we should contact you")],
    )
    hopes = TextAreaField(
        "What do you hope to get from joining?",
        validators=[
            DataRequired("Tell us what you hope to get from joining"),
            Length(max=HOPES_MAX, message=f"Keep this to {HOPES_MAX} characters or fewer"),
        ],
    )
    pathway = SelectField(
        "Is it mainly about one of these? (optional)",
        choices=[SelectChoice("", "None of these, or not sure"), *Pathway.choices()[:-1]],
        validators=[Optional()],
    )
    access_needs = TextAreaField(
        "Anything that would help you take part (optional)",
        validators=[Length(max=NEEDS_MAX, message=f"Keep this to {NEEDS_MAX} characters or fewer")],
    )
    course = HiddenField()
    consent = BooleanField(
        "I agree that the link worker service may keep these details and contact me about "
        "joining, and share them with the course's provider if I join"
    )
    # Left empty by people (it is never shown); filled in by programs that fill every box.
    website = StrippedStringField("Leave this empty", validators=[Length(max=200)])

    def __init__(self, *args: Any, today: date, practices: list[SelectChoice], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._today = today
        self.gp_practice.choices = [SelectChoice("", "Choose your GP practice"), *practices]

    def validate_date_of_birth(self, field: Any) -> None:
        if field.errors:
            return
        try:
            clean_date_of_birth(field.data, self._today)
        except InvalidValue as error:
            message = str(error).replace("the date of birth", "your date of birth")
            raise ValidationError(message) from error

    def validate_gp_practice(self, field: Any) -> None:
        if not field.data or field.data not in {c.value for c in field.choices[1:]}:
            raise ValidationError("Choose your GP practice")

    def validate_consent(self, field: Any) -> None:
        if not field.data:
            raise ValidationError("You need to agree so that we can contact you")

    def validate_preferred_contact(self, field: Any) -> None:
        needs = "email" if field.data == ContactMethod.EMAIL.value else "phone"
        if not getattr(self, needs).data and not getattr(self, needs).errors:
            where = "an email address" if needs == "email" else "a phone number"
            raise ValidationError(f"Enter {where} so that we can contact you that way")

    @property
    def from_a_program(self) -> bool:
        return bool(self.website.data)
