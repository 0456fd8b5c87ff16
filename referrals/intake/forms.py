"""Referral, contact, conversation and transition forms. They validate; services write."""

from __future__ import annotations

from datetime import date
from typing import Any

from wtforms import BooleanField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional, ValidationError

from referrals.dates import check_received, refusal
from referrals.forms import Form, MultiCheckboxField, StrippedStringField, UKDateField
from referrals.intake.validation import (
    NHS_NUMBER_TYPED_MAX,
    PHONE_TYPED_MAX,
    POSTCODE_TYPED_MAX,
    InvalidValue,
    clean_date_of_birth,
    clean_nhs_number,
    clean_phone,
    clean_postcode,
    contactable,
    reachable,
    risk_described,
)

# The API reads TEXT_MAX through here too; `referrals.text` is where it is written.
from referrals.text import EMAIL_MAX
from referrals.text import TEXT_MAX as TEXT_MAX
from referrals.vocab import (
    ArtForm,
    ContactMethod,
    ContactOutcome,
    Ethnicity,
    Pathway,
    ReferrerType,
    Sex,
)

# A person's given or family name.
NAME_MAX = 100


def _cleaned_by(cleaner: Any) -> Any:
    """A validator that runs a pure cleaner and keeps its normalised value."""

    def check(form: Any, field: Any) -> None:
        if not field.data:
            return
        try:
            field.data = cleaner(field.data)
        except InvalidValue as error:
            raise ValidationError(str(error)) from error

    return check


def raise_refusal(refused: dict[str, str]) -> None:
    """A cross-field rule's refusal, said at the field being validated."""
    for message in refused.values():
        raise ValidationError(message)


def name_field(label: str, missing: str) -> StrippedStringField:
    """A required name: the referral form's and self-referral's first and last names."""
    return StrippedStringField(
        label,
        validators=[
            DataRequired(missing),
            Length(max=NAME_MAX, message=f"{label} must be {NAME_MAX} characters or fewer"),
        ],
    )


def postcode_field(missing: str) -> StrippedStringField:
    return StrippedStringField(
        "Postcode",
        validators=[
            DataRequired(missing),
            Length(max=POSTCODE_TYPED_MAX),
            _cleaned_by(clean_postcode),
        ],
    )


def phone_field(label: str = "Phone number") -> StrippedStringField:
    return StrippedStringField(
        label, validators=[Optional(), Length(max=PHONE_TYPED_MAX), _cleaned_by(clean_phone)]
    )


def email_field(label: str = "Email address") -> StrippedStringField:
    return StrippedStringField(
        label,
        validators=[
            Optional(),
            Length(max=EMAIL_MAX),
            Email(
                "Enter an email address in the correct format, like name@example.com",
                check_deliverability=False,
            ),
        ],
    )


class ReferralForm(Form):
    nhs_number = StrippedStringField(
        "NHS number",
        validators=[
            DataRequired("Enter the NHS number"),
            Length(max=NHS_NUMBER_TYPED_MAX),
            _cleaned_by(clean_nhs_number),
        ],
    )
    given_name = name_field("First name", "Enter the first name")
    family_name = name_field("Last name", "Enter the last name")
    date_of_birth = UKDateField("Date of birth")
    sex = RadioField("Sex", choices=Sex.choices(), validators=[InputRequired("Select sex")])
    ethnicity = SelectField(
        "Ethnic group",
        choices=Ethnicity.choices(),
        validators=[InputRequired("Select an ethnic group or Not stated")],
    )
    postcode = postcode_field("Enter the postcode")
    phone = phone_field()
    email = email_field()
    preferred_contact = RadioField(
        "Preferred way to contact them",
        choices=ContactMethod.choices()[:4],
        default=ContactMethod.PHONE.value,
        validators=[InputRequired("Select how they prefer to be contacted")],
    )
    communication_needs = TextAreaField(
        "Communication needs (optional)", validators=[Length(max=TEXT_MAX)]
    )
    access_needs = TextAreaField("Access needs (optional)", validators=[Length(max=TEXT_MAX)])

    gp_practice = SelectField("Registered GP practice", coerce=str, validators=[Optional()])
    referrer_type = RadioField(
        "Who is referring",
        choices=ReferrerType.choices(),
        validators=[InputRequired("Select who is referring")],
    )
    pathway = SelectField(
        "Pathway",
        choices=[SelectChoice("", "Choose a pathway"), *Pathway.choices()],
        validators=[DataRequired("Select a pathway")],
    )
    reason = TextAreaField(
        "Reason for referral",
        validators=[DataRequired("Enter the reason for referral"), Length(max=TEXT_MAX)],
    )
    interests = MultiCheckboxField("Interests (optional)", choices=ArtForm.choices())
    risk_flag = BooleanField(
        "There is a safeguarding concern or risk the link worker should know about"
    )
    risk_note = TextAreaField("Describe the concern or risk", validators=[Length(max=TEXT_MAX)])
    received_on = UKDateField("Date received", message="Enter a real date, for example 3 11 2026")
    consent = BooleanField(
        "The person agrees to be referred and for their details to be shared "
        "with the link worker service and the arts provider"
    )
    new_episode_reason = TextAreaField(
        "Why is this a new referral? (optional)", validators=[Length(max=TEXT_MAX)]
    )

    def __init__(
        self, *args: Any, today: date, practices: list[SelectChoice] | None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._today = today
        if practices is None:
            del self.gp_practice  # referrers refer for their own practice
        else:
            self.gp_practice.choices = [SelectChoice("", "Choose a practice"), *practices]

    def validate_date_of_birth(self, field: Any) -> None:
        if field.errors:
            return
        try:
            clean_date_of_birth(field.data, self._today)
        except InvalidValue as error:
            raise ValidationError(str(error)) from error

    def validate_received_on(self, field: Any) -> None:
        if field.data and (refused := refusal(check_received, field.data, self._today)):
            raise ValidationError(str(refused))

    def validate_consent(self, field: Any) -> None:
        if not field.data:
            raise ValidationError("Confirm the person agrees to be referred")

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        # Checked here: the fields' Optional() validators stop their own chains when empty.
        if not self.phone.errors and (refused := contactable(self.phone.data, self.email.data)):
            for name, message in refused.items():
                self[name].errors = [*self[name].errors, message]
            valid = False
        return valid

    def validate_preferred_contact(self, field: Any) -> None:
        raise_refusal(reachable(field.data, self.phone.data, self.email.data))

    def validate_risk_note(self, field: Any) -> None:
        raise_refusal(risk_described(self.risk_flag.data, field.data))

    def validate_gp_practice(self, field: Any) -> None:
        if not field.data:
            raise ValidationError("Select the person's GP practice")


class ContactAttemptForm(Form):
    method = RadioField(
        "How",
        choices=ContactMethod.choices(),
        default="phone",
        validators=[InputRequired("Select how you tried to contact them")],
    )
    outcome = RadioField(
        "Outcome",
        choices=ContactOutcome.choices(),
        validators=[InputRequired("Select the outcome")],
    )
    note = TextAreaField("Note (optional)", validators=[Length(max=TEXT_MAX)])


class ConversationForm(Form):
    held_on = UKDateField("Date of the conversation")
    what_matters = TextAreaField(
        "What matters to them",
        validators=[DataRequired("Record what matters to them"), Length(max=TEXT_MAX)],
    )
    agreed_next_steps = TextAreaField(
        "Agreed next steps (optional)", validators=[Length(max=TEXT_MAX)]
    )
    preferred_art_forms = MultiCheckboxField(
        "Art forms they would like to try (optional)", choices=ArtForm.choices()
    )

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._today = today

    def validate_held_on(self, field: Any) -> None:
        if field.data is None and not field.errors:
            raise ValidationError("Enter the date of the conversation")
        if field.data and field.data > self._today:
            raise ValidationError("The conversation date must be today or in the past")


class TransitionForm(Form):
    to = SelectField("New status", validators=[DataRequired("Select the new status")])
    reason = TextAreaField("Reason", validators=[Length(max=TEXT_MAX)])
    note = TextAreaField("Note (optional)", validators=[Length(max=TEXT_MAX)])


class AssignForm(Form):
    link_worker = SelectField("Link worker", coerce=str)


ACCEPT = "accept"
KEEP = "keep"


class ReconciliationForm(Form):
    """One choice per detail that differs: use what the referral sent, or keep what is stored.
    The fields are added by `reconciliation_form`, one per difference."""


def reconciliation_form(differences: list[tuple[str, str, str, str]]) -> ReconciliationForm:
    """The form for these differences, each (field name, label, stored text, sent text)."""

    class Choices(ReconciliationForm):
        pass

    for name, label, stored, sent in differences:
        setattr(
            Choices,
            name,
            RadioField(
                label,
                choices=[
                    SelectChoice(ACCEPT, f"Use the new detail: {sent}"),
                    SelectChoice(KEEP, f"Keep: {stored}"),
                ],
                validators=[
                    InputRequired(f"Choose whether to use the new {label.lower()} or keep it")
                ],
            ),
        )
    return Choices()
