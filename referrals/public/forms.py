"""The self-referral form. It validates; `public.services` writes."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlsplit

from wtforms import BooleanField, HiddenField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from referrals.forms import Form, MultiCheckboxField, StrippedStringField, UKDateField
from referrals.intake.forms import (
    _cleaned_by,
    email_field,
    name_field,
    phone_field,
    postcode_field,
    raise_refusal,
)
from referrals.intake.validation import (
    NHS_NUMBER_TYPED_MAX,
    InvalidValue,
    clean_date_of_birth,
    clean_nhs_number,
    contactable,
    reachable,
)
from referrals.public.models import AREA_MAX, DESCRIPTION_MAX
from referrals.vocab import ArtForm, ContactMethod, Pathway, ProviderType

HOPES_MAX = 2000
NEEDS_MAX = 1000


class SelfReferralForm(Form):
    given_name = name_field("First name", "Enter your first name")
    family_name = name_field("Last name", "Enter your last name")
    date_of_birth = UKDateField("Date of birth")
    nhs_number = StrippedStringField(
        "NHS number (optional)",
        validators=[
            Optional(),
            Length(max=NHS_NUMBER_TYPED_MAX),
            _cleaned_by(clean_nhs_number),
        ],
    )
    postcode = postcode_field("Enter your postcode")
    gp_practice = SelectField("Your GP practice", coerce=str)
    phone = phone_field()
    email = email_field()
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

    def _unreachable(self) -> dict[str, str]:
        return reachable(
            self.preferred_contact.data, self.phone.data, self.email.data, to_the_person=True
        )

    def validate_preferred_contact(self, field: Any) -> None:
        raise_refusal(self._unreachable())

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        # Checked here: the contact fields' Optional() validators stop their own chains when
        # empty. Where the preferred way's refusal already names the missing detail, it is
        # said once; without a way chosen, the person still hears that one is needed.
        said = self._unreachable().values()
        if not self.phone.errors and not set(said) & set(self.preferred_contact.errors):
            for name, message in contactable(self.phone.data, self.email.data).items():
                self[name].errors = [*self[name].errors, message]
                valid = False
        return valid

    @property
    def from_a_program(self) -> bool:
        return bool(self.website.data)


def _public_website(form: Any, field: Any) -> None:
    """A website the public can open: http or https, with a host."""
    if not field.data:
        return
    address = field.data if "://" in field.data else f"https://{field.data}"
    problem = ValidationError("Enter a website address, like https://www.example.org")
    try:
        parts = urlsplit(address)
    except ValueError as unreadable:  # e.g. an unbalanced "[" read as an IPv6 host
        raise problem from unreadable
    if parts.scheme not in ("http", "https") or "." not in parts.netloc or " " in address:
        raise problem
    field.data = address


class ProviderProfileForm(Form):
    """What the open directory says about a provider: all of it is published."""

    provider_type = RadioField(
        "What kind of organisation are you?",
        choices=ProviderType.choices(),
        validate_choice=False,  # the check below says what to do in words
    )
    area = StrippedStringField(
        "Where do you work?",
        validators=[
            DataRequired("Enter where you work"),
            Length(max=AREA_MAX, message=f"Keep this to {AREA_MAX} characters or fewer"),
        ],
    )
    art_forms = MultiCheckboxField("Art forms you offer", choices=ArtForm.choices())
    description = TextAreaField(
        "About you",
        validators=[
            DataRequired("Describe your organisation"),
            Length(
                max=DESCRIPTION_MAX, message=f"Keep this to {DESCRIPTION_MAX} characters or fewer"
            ),
        ],
    )
    email = email_field("Public email address (optional)")
    phone = phone_field("Public phone number (optional)")
    website = StrippedStringField(
        "Website (optional)", validators=[Optional(), Length(max=300), _public_website]
    )

    def validate_provider_type(self, field: Any) -> None:
        if field.data not in ProviderType._value2member_map_:
            raise ValidationError("Select what kind of organisation you are")

    def validate_art_forms(self, field: Any) -> None:
        if not field.data:
            raise ValidationError("Select at least one art form")
