"""Admin forms: organisations, users, passwords and list filters. Forms validate; services write.

Every rule an admin can break (duplicates, lengths, ODS format, a role that does not fit the
organisation, locking themselves out) is checked here so the message appears at its field.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from flask import current_app
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement, or_, select
from wtforms import (
    BooleanField,
    EmailField,
    Form,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    Length,
    Optional,
    StopValidation,
    ValidationError,
)

from referrals.auth.forms import NewPasswordMixin, ReauthenticateForm
from referrals.auth.models import (
    ORGANISATION_NAME_MAX,
    ROLE_ORGANISATION_KINDS,
    USER_NAME_MAX,
    Organisation,
    OrganisationKind,
    Role,
    User,
)
from referrals.auth.services import (
    OrganisationFields,
    RoleOrganisationMismatch,
    UserFields,
    check_role_fits_organisation,
    email_taken,
    ods_code_taken,
    organisation_name_taken,
)
from referrals.extensions import db
from referrals.forms import MultiCheckboxField, UKDateField, no_control_characters
from referrals.ids import parse_id
from referrals.intake.models import Referral
from referrals.text import EMAIL_MAX, SEARCH_MAX, without_control_characters

# A GP practice's code is a letter and five digits (A81001); commissioners and other NHS
# bodies often have three characters (15N, QWE).
GP_PRACTICE_ODS = re.compile(r"[A-Z]\d{5}")
OTHER_ODS = re.compile(r"[A-Z]\d{5}|[A-Z0-9]{3}")

E = TypeVar("E", bound=enum.Enum)


def _enum_coercer(enum_cls: type[E]) -> Any:
    """Coerce a submitted value to a member of `enum_cls`; anything else becomes None."""

    def coerce(value: Any) -> E | None:
        if value is None or value == "":
            return None
        try:
            return enum_cls(value)
        except ValueError:
            return None

    return coerce


def _int_or_none(value: Any) -> int | None:
    """An id from a form or the address bar; anything else (e.g. "²", which isdigit()) is None."""
    return parse_id(value)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _without_control_characters(value: Any) -> str:
    # Filters read from the address bar: a NUL byte would make PostgreSQL refuse the query.
    return without_control_characters(str(value or "")).strip()


def _valid_email(form: Any, field: Any) -> None:
    # The reserved `.test` domain (demo and test accounts) is accepted outside production only.
    # An invalid address stops validation, so it never reaches the uniqueness query.
    try:
        Email(
            "Enter an email address in the correct format, like name@nhs.net",
            check_deliverability=False,
            test_environment=current_app.config.get("ENV") != "production",
        )(form, field)
    except ValidationError as error:
        raise StopValidation(str(error)) from error


# Organisations -------------------------------------------------------------------------------


class OrganisationForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[_strip],
        validators=[
            DataRequired("Enter the organisation's name"),
            no_control_characters,
            Length(
                max=ORGANISATION_NAME_MAX,
                message=f"Name must be {ORGANISATION_NAME_MAX} characters or fewer",
            ),
        ],
    )
    kind = RadioField(
        "Type of organisation",
        choices=[SelectChoice(kind, kind.label) for kind in OrganisationKind],
        coerce=_enum_coercer(OrganisationKind),
        validate_choice=False,
        validators=[DataRequired("Select the type of organisation")],
    )
    ods_code = StringField(
        "ODS code",
        filters=[lambda value: value.strip().upper() if isinstance(value, str) else value],
    )

    shared_mailbox = StringField(
        "Shared mailbox",
        filters=[_strip],
        validators=[Optional(), Length(max=EMAIL_MAX), _valid_email],
    )

    def __init__(self, *args: Any, organisation: Organisation | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._organisation = organisation

    def validate_name(self, field: Any) -> None:
        if organisation_name_taken(field.data, excluding=self._organisation):
            raise ValidationError("An organisation with this name already exists")

    def validate_ods_code(self, field: Any) -> None:
        code = field.data or ""
        kind = self.kind.data
        if kind is OrganisationKind.GP_PRACTICE:
            if not code:
                raise ValidationError("Enter the GP practice's ODS code")
            if not GP_PRACTICE_ODS.fullmatch(code):
                raise ValidationError(
                    "Enter the GP practice's ODS code as a letter and 5 numbers, like L84001"
                )
        elif code and not OTHER_ODS.fullmatch(code):
            raise ValidationError(
                "Enter an ODS code as a letter and 5 numbers, like L84001, or 3 letters or "
                "numbers, like 15N"
            )
        if code and ods_code_taken(code, excluding=self._organisation):
            raise ValidationError("Another organisation already has this ODS code")

    def organisation_fields(self) -> OrganisationFields:
        return OrganisationFields(
            name=self.name.data,
            kind=self.kind.data,
            ods_code=self.ods_code.data or None,
            active=True,
            shared_mailbox=self.shared_mailbox.data or None,
        )


class EditOrganisationForm(OrganisationForm):
    active = BooleanField("Active")

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._actor = actor

    def validate_kind(self, field: Any) -> None:
        """Refuse a type that the organisation's current members could not belong to."""
        if self._organisation is None or field.data is None:
            return
        roles = db.session.scalars(
            select(User.role).where(User.organisation_id == self._organisation.id).distinct()
        ).all()
        for role in sorted(roles):
            allowed = ROLE_ORGANISATION_KINDS[role]
            if field.data not in allowed:
                kinds = " or ".join(sorted(kind.label for kind in allowed))
                raise ValidationError(
                    f"This organisation has {role.label.lower()} accounts, who must belong to a "
                    f"{kinds}. Move them to another organisation first"
                )

    def validate_active(self, field: Any) -> None:
        own = (
            self._actor is not None
            and self._organisation is not None
            and (self._actor.organisation_id == self._organisation.id)
        )
        if own and not field.data:
            raise ValidationError("You cannot deactivate your own organisation")

    def organisation_fields(self) -> OrganisationFields:
        return dataclasses.replace(super().organisation_fields(), active=bool(self.active.data))


# Users ---------------------------------------------------------------------------------------


def organisation_choices(include: Organisation | None = None) -> list[Organisation]:
    """Organisations a user can be put in: the active ones, plus the user's current one."""
    condition: ColumnElement[bool] = Organisation.active.is_(True)
    if include is not None:
        condition = or_(condition, Organisation.id == include.id)
    return list(
        db.session.scalars(select(Organisation).where(condition).order_by(Organisation.name))
    )


class UserForm(FlaskForm):
    name = StringField(
        "Full name",
        filters=[_strip],
        validators=[
            DataRequired("Enter the person's full name"),
            no_control_characters,
            Length(max=USER_NAME_MAX, message=f"Name must be {USER_NAME_MAX} characters or fewer"),
        ],
    )
    email = EmailField(
        "Email address",
        filters=[_strip],
        validators=[
            DataRequired("Enter the person's email address"),
            Length(max=EMAIL_MAX, message=f"Email address must be {EMAIL_MAX} characters or fewer"),
            _valid_email,
        ],
    )
    role = RadioField(
        "Role",
        choices=[SelectChoice(role, role.label) for role in Role],
        coerce=_enum_coercer(Role),
        validate_choice=False,
        validators=[DataRequired("Select a role")],
    )
    organisation = SelectField(
        "Organisation",
        coerce=_int_or_none,
        validate_choice=False,
        validators=[DataRequired("Select an organisation")],
    )

    def __init__(
        self,
        *args: Any,
        organisations: Iterable[Organisation] = (),
        user: User | None = None,
        actor: Any = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._organisations = {o.id: o for o in organisations}
        self._user = user
        self._actor = actor
        self.organisation.choices = [SelectChoice("", "Select an organisation")] + [
            SelectChoice(o.id, f"{o.name} ({o.kind.label}{'' if o.active else ', inactive'})")
            for o in self._organisations.values()
        ]

    @property
    def editing_self(self) -> bool:
        return (
            self._user is not None and self._actor is not None and self._user.id == self._actor.id
        )

    def validate_email(self, field: Any) -> None:
        if email_taken(field.data, excluding=self._user):
            raise ValidationError("An account with this email address already exists")

    def validate_role(self, field: Any) -> None:
        if self.editing_self and field.data is not Role.ADMIN:
            raise ValidationError("You cannot remove your own admin role")

    def validate_organisation(self, field: Any) -> None:
        organisation = self._organisations.get(field.data)
        if organisation is None:
            raise ValidationError("Select an organisation from the list")
        if isinstance(self.role.data, Role):
            try:
                check_role_fits_organisation(self.role.data, organisation)
            except RoleOrganisationMismatch as error:
                raise ValidationError(str(error)) from error

    def user_fields(self) -> UserFields:
        return UserFields(
            email=self.email.data,
            name=self.name.data,
            role=self.role.data,
            organisation=self._organisations[self.organisation.data],
            active=True,
        )


class NewUserForm(NewPasswordMixin, UserForm):
    new_password = PasswordField(
        "Initial password", validators=[DataRequired("Enter an initial password")]
    )
    confirm_password = PasswordField(
        "Confirm initial password",
        validators=[
            DataRequired("Enter the initial password again"),
            EqualTo("new_password", "The passwords do not match"),
        ],
    )

    def policy_context(self) -> dict[str, str]:
        return {"email": self.email.data or "", "name": self.name.data or ""}


class EditUserForm(UserForm):
    active = BooleanField("Active")

    def validate_active(self, field: Any) -> None:
        if self.editing_self and not field.data:
            raise ValidationError("You cannot deactivate your own account")

    def user_fields(self) -> UserFields:
        fields = super().user_fields()
        return UserFields(
            fields.email, fields.name, fields.role, fields.organisation, bool(self.active.data)
        )


class ResetPasswordForm(NewPasswordMixin, FlaskForm):
    new_password = PasswordField("New password", validators=[DataRequired("Enter a new password")])
    confirm_password = PasswordField(
        "Confirm new password",
        validators=[
            DataRequired("Enter the new password again"),
            EqualTo("new_password", "The passwords do not match"),
        ],
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._user = user

    def policy_context(self) -> dict[str, str]:
        return {"email": self._user.email, "name": self._user.name}


# List filters (GET, nothing changes, so no CSRF token) ---------------------------------------


class FilterForm(Form):
    """Filters read from the query string; unknown values are ignored rather than refused."""

    def selected(self) -> dict[str, str]:
        """The filters in force, to keep them across pages."""
        return {name: str(field.data) for name, field in self._fields.items() if field.data}


def _choice(label: str) -> Any:
    # Choices are filled in per request; a value not among them is ignored by the view.
    return SelectField(label, choices=[], validate_choice=False, default="")


class OrganisationFilterForm(FilterForm):
    kind = _choice("Type")

    def __init__(self, formdata: Any):
        super().__init__(formdata)
        self.kind.choices = [SelectChoice("", "All types")] + [
            SelectChoice(k.value, k.label) for k in OrganisationKind
        ]

    @property
    def kind_value(self) -> OrganisationKind | None:
        value: OrganisationKind | None = _enum_coercer(OrganisationKind)(self.kind.data)
        return value


class UserFilterForm(FilterForm):
    q = StringField(
        "Name or email", filters=[lambda v: _without_control_characters(v)[:SEARCH_MAX]]
    )
    role = _choice("Role")
    organisation = _choice("Organisation")

    def __init__(self, formdata: Any, organisations: Iterable[tuple[int, str]]):
        super().__init__(formdata)
        self.role.choices = [SelectChoice("", "All roles")] + [
            SelectChoice(r.value, r.label) for r in Role
        ]
        self.organisation.choices = [SelectChoice("", "All organisations")] + [
            SelectChoice(str(id_), name) for id_, name in organisations
        ]

    @property
    def role_value(self) -> Role | None:
        value: Role | None = _enum_coercer(Role)(self.role.data)
        return value

    @property
    def organisation_id(self) -> int | None:
        return _int_or_none(self.organisation.data)


class DateRangeFilterForm(FilterForm):
    """From and to, UK dates, both optional; a date that is not real is a message at its field."""

    since = UKDateField("From", message="Enter a real date, for example 1 3 2026")
    until = UKDateField("To", message="Enter a real date, for example 31 3 2026")

    def validate_until(self, field: Any) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date must be the same as or after the start date")


PERSON_REFERENCE = re.compile(r"^([PR]?)(\d{1,10})$")
PERSON_MESSAGE = "Enter a person's id such as P123, or a referral's such as R45"


class AuditFilterForm(DateRangeFilterForm):
    person = StringField(
        "Person",
        filters=[lambda v: _without_control_characters(v).strip().upper()[:SEARCH_MAX]],
    )
    action = _choice("Action")
    user = _choice("User")

    def __init__(
        self, formdata: Any, actions: Iterable[str], users: Iterable[tuple[int, str, str]]
    ):
        super().__init__(formdata)
        self.person_id: int | None = None
        self.action.choices = [SelectChoice("", "All actions")] + [
            SelectChoice(a, a) for a in actions
        ]
        self.user.choices = [SelectChoice("", "All users")] + [
            SelectChoice(str(id_), f"{name} ({email})") for id_, name, email in users
        ]

    @property
    def action_value(self) -> str | None:
        return _without_control_characters(self.action.data)[:64] or None

    @property
    def user_id(self) -> int | None:
        return _int_or_none(self.user.data)

    def validate_person(self, field: Any) -> None:
        """A person by id (P123, or 123), or by one of their referrals (R45)."""
        if not field.data:
            return
        match = PERSON_REFERENCE.match(field.data.replace(" ", ""))
        number = parse_id(match.group(2)) if match else None
        if match is None or number is None:
            raise ValidationError(PERSON_MESSAGE)
        if match.group(1) != "R":
            self.person_id = number
            return
        person = db.session.scalar(select(Referral.patient_id).where(Referral.id == number))
        if person is None:
            raise ValidationError(f"There is no referral R{number}")
        self.person_id = person


# Security -----------------------------------------------------------------------------------------


class RequiredRolesForm(ReauthenticateForm):
    roles = MultiCheckboxField(
        "Roles that must use two-step verification",
        choices=[(role.value, role.label) for role in Role],
    )
