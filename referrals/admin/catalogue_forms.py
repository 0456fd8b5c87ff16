"""Admin forms for the catalogue: contracts and their KPI targets, venues and courses.

Forms validate, never write. Numbers are typed as text and parsed here, so a mistake is shown
back exactly as typed with a message at its field; the course services have the last word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from typing import Any, TypeVar

from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement, func, or_, select
from wtforms import Field, RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, StopValidation, ValidationError
from wtforms.widgets import TextInput

from referrals.admin.forms import FilterForm, _choice, _enum_coercer, _int_or_none, _strip
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses.kpi_targets import (
    MONTH,
    SPAN_LABELS,
    TARGET_LEVELS,
    TARGETABLE_KPIS,
    InvalidTargets,
    TargetableKpi,
    check_targets,
    target_for,
)
from referrals.courses.models import Contract, Course, Venue
from referrals.courses.schedule import Frequency, InvalidSchedule, Schedule, expand
from referrals.courses.services import (
    ADDRESS_MAX,
    AGE_MAX,
    CAPACITY_MAX,
    CONTRACT_VALUE_MAX_PENCE,
    COST_MAX_PENCE,
    TITLE_MAX,
    ContractFields,
    CourseFields,
    VenueFields,
)
from referrals.dates import check_contract, refusal
from referrals.extensions import db
from referrals.forms import MultiCheckboxField, NoControlCharacters, UKDateField
from referrals.intake.validation import POSTCODE_TYPED_MAX, InvalidValue, clean_postcode
from referrals.text import TEXT_MAX, control_characters_refused
from referrals.vocab import ArtForm, Pathway

T = TypeVar("T")

# Where a service names an input by its column, the form calls it by its field.
SERVICE_FIELDS = {
    "commissioner_id": "commissioner",
    "provider_id": "provider",
    "contract_id": "contract",
    "venue_id": "venue",
    "schedule.start_date": "start_date",
    "value_pence": "value",
}


def _given(value: T | None) -> T:
    """A value the form's validation has already required."""
    assert value is not None
    return value


# Validators ----------------------------------------------------------------------------------


def _required(message: str) -> Callable[[Any, Any], None]:
    """Like DataRequired, but silent when the field already said the text could not be read."""

    def check(form: Any, field: Any) -> None:
        if field.errors:
            raise StopValidation()
        if field.data is None or field.data == "" or field.data == []:
            raise StopValidation(message)

    return check


def _between(low: int, high: int, below: str, above: str) -> Callable[[Any, Any], None]:
    def check(form: Any, field: Any) -> None:
        if field.data is None:
            return
        if field.data < low:
            raise StopValidation(below)
        if field.data > high:
            raise StopValidation(above)

    return check


def _name_field(label: str, missing: str) -> Any:
    return StringField(
        label,
        filters=[_strip],
        validators=[
            DataRequired(missing),
            NoControlCharacters(control_characters_refused(label)),
            Length(max=TITLE_MAX, message=f"{label} must be {TITLE_MAX} characters or fewer"),
        ],
    )


def _text_area(label: str, name: str, maximum: int, missing: str | None = None) -> Any:
    validators: list[Any] = [DataRequired(missing)] if missing else []
    validators += [
        NoControlCharacters(control_characters_refused(name), multiline=True),
        Length(max=maximum, message=f"{name} must be {maximum:,} characters or fewer"),
    ]
    return TextAreaField(label, filters=[_strip], validators=validators)


# Fields typed as text ------------------------------------------------------------------------


class TypedTextField(Field):
    """A value typed into a text box and parsed; what was typed is shown back on errors."""

    widget = TextInput()
    data: Any

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any):
        super().__init__(label, validators, **kwargs)
        self.raw_text = ""

    def parse(self, text: str) -> Any:
        """The value for `text`; raises ValueError with a message fit to show.

        Plain text here; number fields override it.
        """
        return text

    def format(self, value: Any) -> str:
        return str(value)

    def _value(self) -> str:
        if self.raw_text:
            return self.raw_text
        return "" if self.data is None else self.format(self.data)

    def process_formdata(self, valuelist: list[Any]) -> None:
        raw = valuelist[0] if valuelist else ""
        self.raw_text = (raw if isinstance(raw, str) else "").strip()[:40]
        self.data = None
        if self.raw_text:
            self.data = self.parse(self.raw_text)


_WHOLE = re.compile(r"[+-]?\d{1,9}", re.ASCII)


class WholeNumberField(TypedTextField):
    def __init__(self, label: str, validators: Any = None, *, message: str, **kwargs: Any):
        super().__init__(label, validators, **kwargs)
        self.message = message

    def parse(self, text: str) -> int:
        if not _WHOLE.fullmatch(text):
            raise ValueError(self.message)
        return int(text)


_POUNDS = re.compile(r"£?\s*(\d{1,9})(?:\.(\d+))?", re.ASCII)


class PoundsField(TypedTextField):
    """An amount in pounds, like 33.00 or £33; its data is in pence."""

    def parse(self, text: str) -> int:
        if text.lstrip("£ ").startswith("-"):
            raise ValueError(f"{self.label.text} must be £0 or more")
        match = _POUNDS.fullmatch(text)
        if not match:
            raise ValueError(f"Enter the {self.label.text.lower()} in pounds, like 33.00")
        pounds, pence = match.group(1), match.group(2) or ""
        if len(pence) > 2:
            raise ValueError(
                f"Enter the {self.label.text.lower()} to the nearest penny, like 33.50"
            )
        return int(pounds) * 100 + int(pence.ljust(2, "0"))

    def format(self, value: Any) -> str:
        return f"{value // 100}.{value % 100:02d}"


_CLOCK = re.compile(r"(\d{1,2})[:.](\d{2})", re.ASCII)


class ClockTimeField(TypedTextField):
    """A time of day in 24-hour format, like 10:00 or 14:30."""

    def parse(self, text: str) -> time:
        match = _CLOCK.fullmatch(text)
        if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
            return time(int(match.group(1)), int(match.group(2)))
        raise ValueError("Enter the start time in 24-hour format, like 10:00 or 14:30")

    def format(self, value: Any) -> str:
        return f"{value:%H:%M}"


_TARGET = re.compile(r"(-?\d{1,10})(?:\.(\d+))?", re.ASCII)


class TargetField(TypedTextField):
    """One level (minimum, expected or stretch) of one KPI's target for one span.

    The field only reads the number; whether it is an acceptable target is the targets rule's
    to say (`check_targets`), the same rule the API and the contract service apply.
    """

    def __init__(self, kpi: TargetableKpi, span: str, level: str, **kwargs: Any):
        super().__init__(level.capitalize(), **kwargs)
        self.kpi = kpi
        self.span = span
        self.level = level

    @property
    def description_text(self) -> str:
        return f"{self.kpi.code} {SPAN_LABELS[self.span]} {self.level} target"

    def parse(self, text: str) -> Decimal:
        match = _TARGET.fullmatch(text)
        if not match:
            raise ValueError(f"Enter the {self.description_text} as a number, like 40")
        if len(match.group(2) or "") > 2:
            raise ValueError(f"The {self.description_text} can have at most 2 decimal places")
        return Decimal(text)

    def format(self, value: Any) -> str:
        return _number_text(Decimal(str(value)))


def _number_text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def target_field_name(code: str, span: str, level: str) -> str:
    """`target_B1_minimum` for the month, `target_B1_year_to_date_minimum` for the year."""
    return f"target_{code}_{level}" if span == MONTH else f"target_{code}_{span}_{level}"


# Contracts -----------------------------------------------------------------------------------


def commissioner_choices(include: Organisation | None = None) -> list[Organisation]:
    """Commissioners a contract can belong to: the active ones, plus its current one."""
    return _organisations(OrganisationKind.COMMISSIONER, include)


def _organisations(kind: OrganisationKind, include: Organisation | None) -> list[Organisation]:
    condition: ColumnElement[bool] = Organisation.active.is_(True)
    if include is not None:
        condition = or_(condition, Organisation.id == include.id)
    return list(
        db.session.scalars(
            select(Organisation)
            .where(Organisation.kind == kind, condition)
            .order_by(func.lower(Organisation.name), Organisation.id)
        )
    )


def _organisation_choice(organisation: Organisation) -> SelectChoice:
    inactive = "" if organisation.active else " (inactive)"
    return SelectChoice(organisation.id, organisation.name + inactive)


class ContractForm(FlaskForm):
    name = _name_field("Name", "Enter the contract's name")
    commissioner = SelectField(
        "Commissioner",
        coerce=_int_or_none,
        validate_choice=False,
        validators=[DataRequired("Select the commissioner")],
    )
    start_date = UKDateField(
        "Start date",
        message="Enter a real start date, for example 1 4 2026",
        validators=[_required("Enter the start date")],
    )
    end_date = UKDateField(
        "End date",
        message="Enter a real end date, for example 31 3 2027",
        validators=[_required("Enter the end date")],
    )
    value = PoundsField(
        "Value of the contract",
        validators=[
            _between(
                0,
                CONTRACT_VALUE_MAX_PENCE,
                "Value of the contract must be £0 or more",
                f"Value of the contract must be £{CONTRACT_VALUE_MAX_PENCE // 100:,} or less",
            )
        ],
    )
    # One TargetField per KPI and level is added below the class, e.g. `target_B1_minimum`.

    def __init__(
        self,
        *args: Any,
        commissioners: Iterable[Organisation] = (),
        contract: Contract | None = None,
        today: date,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._commissioners = {o.id: o for o in commissioners}
        self._contract = contract
        self._today = today
        self.commissioner.choices = [SelectChoice("", "Select a commissioner")] + [
            _organisation_choice(o) for o in self._commissioners.values()
        ]

    def target_fields(self, kpi: TargetableKpi, span: str) -> list[TargetField]:
        return [getattr(self, target_field_name(kpi.code, span, level)) for level in TARGET_LEVELS]

    def validate_name(self, field: Any) -> None:
        query = select(Contract.id).where(func.lower(Contract.name) == field.data.lower())
        if self._contract is not None:
            query = query.where(Contract.id != self._contract.id)
        if db.session.scalar(query) is not None:
            raise ValidationError("A contract with this name already exists")

    def validate_commissioner(self, field: Any) -> None:
        if field.data not in self._commissioners:
            raise ValidationError("Select a commissioner from the list")

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        valid = self._check_term() and valid
        self._targets: dict[str, Any] = {}
        try:
            self._targets = check_targets(self._given_targets())
        except InvalidTargets as invalid:
            for key, messages in invalid.errors.items():
                code, span, level = [*key.split("."), "", "", ""][:3]
                field = getattr(self, target_field_name(code, span, level or "minimum"), None)
                if field is None:
                    self.form_errors.extend(messages)
                else:
                    field.errors.extend(messages)
            valid = False
        return valid and not any(
            f.errors
            for kpi in TARGETABLE_KPIS
            for span in kpi.spans
            for f in self.target_fields(kpi, span)
        )

    def _check_term(self) -> bool:
        """The dates the service accepts for a contract (referrals.dates), at their fields;
        whether the term still holds its courses' sessions is the service's to say."""
        start, end = self.start_date.data, self.end_date.data
        if start is None or end is None:
            return True
        refused = refusal(check_contract, start, end, self._today)
        if refused is not None:
            show_errors(self, {refused.field: [str(refused)]})
        return refused is None

    def _given_targets(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The levels typed for each KPI and span that has any (unreadable ones left out)."""
        given: dict[str, dict[str, dict[str, Any]]] = {}
        for kpi in TARGETABLE_KPIS:
            for span in kpi.spans:
                fields = self.target_fields(kpi, span)
                if any(f.errors for f in fields) or all(f.data is None for f in fields):
                    continue
                levels = {f.level: f.data for f in fields if f.data is not None}
                given.setdefault(kpi.code, {})[span] = {
                    level: int(value) if value == int(value) else float(value)
                    for level, value in levels.items()
                }
        return given

    def contract_fields(self) -> ContractFields:
        return ContractFields(
            name=self.name.data,
            commissioner=self._commissioners[self.commissioner.data],
            start_date=_given(self.start_date.data),
            end_date=_given(self.end_date.data),
            targets=self._targets,
            value_pence=self.value.data,
        )


for _kpi in TARGETABLE_KPIS:
    for _span in _kpi.spans:
        for _level in TARGET_LEVELS:
            setattr(
                ContractForm,
                target_field_name(_kpi.code, _span, _level),
                TargetField(_kpi, _span, _level),
            )


def contract_form_data(contract: Contract) -> dict[str, Any]:
    """A stored contract as the form's initial data."""
    data: dict[str, Any] = {
        "name": contract.name,
        "commissioner": contract.commissioner_id,
        "start_date": contract.start_date,
        "end_date": contract.end_date,
        "value": contract.value_pence,
    }
    for kpi in TARGETABLE_KPIS:
        for span in kpi.spans:
            levels = target_for(contract.targets, kpi.code, span) or {}
            for level in TARGET_LEVELS:
                if isinstance(levels.get(level), int | float):
                    data[target_field_name(kpi.code, span, level)] = levels[level]
    return data


# Venues --------------------------------------------------------------------------------------


class VenueForm(FlaskForm):
    name = _name_field("Name", "Enter the venue's name")
    address = _text_area("Address", "Address", ADDRESS_MAX, missing="Enter the venue's address")
    postcode = StringField(
        "Postcode",
        filters=[_strip],
        validators=[
            DataRequired("Enter the postcode"),
            Length(max=POSTCODE_TYPED_MAX, message="Enter a real UK postcode, like GL1 2AB"),
        ],
    )
    accessibility = _text_area(
        "Accessibility information (optional)", "Accessibility information", TEXT_MAX
    )

    def validate_postcode(self, field: Any) -> None:
        try:
            field.data = clean_postcode(field.data)
        except InvalidValue as error:
            raise ValidationError(str(error)) from error

    def venue_fields(self) -> VenueFields:
        return VenueFields(
            name=self.name.data,
            address=self.address.data,
            postcode=self.postcode.data,
            accessibility=self.accessibility.data or "",
        )


# Courses -------------------------------------------------------------------------------------


def provider_choices(include: Organisation | None = None) -> list[Organisation]:
    """Arts providers a course can be run by: the active ones, plus its current one."""
    return _organisations(OrganisationKind.PROVIDER, include)


def artist_choices(include: Iterable[int] = ()) -> list[tuple[User, str]]:
    """Active artists (plus a course's current leads), each with their organisation's name."""
    condition: ColumnElement[bool] = User.active.is_(True)
    current = list(include)
    if current:
        condition = or_(condition, User.id.in_(current))
    rows = db.session.execute(
        select(User, Organisation.name)
        .join(Organisation, User.organisation_id == Organisation.id)
        .where(User.role == Role.ARTIST, condition)
        .order_by(func.lower(Organisation.name), func.lower(User.name), User.id)
    )
    return list(rows)


@dataclass(frozen=True)
class CourseChoices:
    """What a course can be linked to, loaded once per request."""

    providers: Sequence[Organisation]
    contracts: Sequence[Contract]
    venues: Sequence[Venue]
    artists: Sequence[tuple[User, str]]

    @classmethod
    def load(cls, course: Course | None = None) -> CourseChoices:
        return cls(
            providers=provider_choices(include=course.provider if course else None),
            contracts=list(
                db.session.scalars(select(Contract).order_by(func.lower(Contract.name)))
            ),
            venues=list(
                db.session.scalars(select(Venue).order_by(func.lower(Venue.name), Venue.id))
            ),
            artists=artist_choices(include=[u.id for u in course.lead_artists] if course else ()),
        )


class CourseForm(FlaskForm):
    title = _name_field("Title", "Enter the course's title")
    description = _text_area("Description (optional)", "Description", TEXT_MAX)
    art_form = SelectField(
        "Art form",
        choices=[SelectChoice("", "Select an art form"), *ArtForm.choices()],
        coerce=_enum_coercer(ArtForm),
        validate_choice=False,
        validators=[DataRequired("Select an art form from the list")],
    )
    provider = SelectField(
        "Arts provider",
        coerce=_int_or_none,
        validate_choice=False,
        validators=[DataRequired("Select the arts provider")],
    )
    contract = SelectField(
        "Contract",
        coerce=_int_or_none,
        validate_choice=False,
        validators=[DataRequired("Select the contract that funds the course")],
    )
    venue = SelectField(
        "Venue",
        coerce=_int_or_none,
        validate_choice=False,
        validators=[DataRequired("Select the venue")],
    )
    pathways = MultiCheckboxField(
        "Target pathways (optional)", choices=Pathway.choices(), validate_choice=False
    )
    min_age = WholeNumberField(
        "Youngest age (optional)",
        message="Enter the youngest age as a whole number of years, like 18",
        validators=[
            _between(
                0,
                AGE_MAX,
                "Youngest age must be 0 or more",
                f"Youngest age must be {AGE_MAX} or less",
            ),
        ],
    )
    max_age = WholeNumberField(
        "Oldest age (optional)",
        message="Enter the oldest age as a whole number of years, like 65",
        validators=[
            _between(
                0, AGE_MAX, "Oldest age must be 0 or more", f"Oldest age must be {AGE_MAX} or less"
            ),
        ],
    )
    capacity = WholeNumberField(
        "Capacity",
        message="Enter the capacity as a whole number, like 12",
        validators=[
            _required("Enter the capacity"),
            _between(
                1,
                CAPACITY_MAX,
                "Capacity must be 1 or more",
                f"Capacity must be {CAPACITY_MAX:,} or less",
            ),
        ],
    )
    cost_per_session = PoundsField(
        "Cost per session to the contract",
        validators=[
            _required("Enter the cost per session to the contract, or 0"),
            _between(
                0,
                COST_MAX_PENCE,
                "Cost per session to the contract must be £0 or more",
                f"Cost per session to the contract must be £{COST_MAX_PENCE // 100:,} or less",
            ),
        ],
    )
    participant_fee = PoundsField(
        "Fee per session to the participant (optional)",
        validators=[
            _between(
                0,
                COST_MAX_PENCE,
                "The participant's fee must be £0 or more",
                f"The participant's fee must be £{COST_MAX_PENCE // 100:,} or less",
            ),
        ],
    )
    lead_artists = MultiCheckboxField(
        "Lead artists (optional)", coerce=_int_or_none, validate_choice=False
    )

    def __init__(self, *args: Any, choices: CourseChoices, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._providers = {o.id: o for o in choices.providers}
        self._contracts = {c.id: c for c in choices.contracts}
        self._venues = {v.id: v for v in choices.venues}
        self._artists = {user.id: user for user, _ in choices.artists}
        self.provider.choices = [SelectChoice("", "Select an arts provider")] + [
            _organisation_choice(o) for o in choices.providers
        ]
        self.contract.choices = [SelectChoice("", "Select a contract")] + [
            SelectChoice(c.id, c.name) for c in choices.contracts
        ]
        self.venue.choices = [SelectChoice("", "Select a venue")] + [
            SelectChoice(v.id, f"{v.name}, {v.postcode}") for v in choices.venues
        ]
        self.lead_artists.choices = [
            SelectChoice(
                user.id, f"{user.name}, {organisation}" + ("" if user.active else " (inactive)")
            )
            for user, organisation in choices.artists
        ]

    def validate_provider(self, field: Any) -> None:
        if field.data not in self._providers:
            raise ValidationError("Select an arts provider from the list")

    def validate_contract(self, field: Any) -> None:
        if field.data not in self._contracts:
            raise ValidationError("Select a contract from the list")

    def validate_venue(self, field: Any) -> None:
        if field.data not in self._venues:
            raise ValidationError("Select a venue from the list")

    def validate_pathways(self, field: Any) -> None:
        known = {p.value for p in Pathway}
        if any(value not in known for value in field.data or []):
            raise ValidationError("Select target pathways from the list")

    def validate_min_age(self, field: Any) -> None:
        oldest = self.max_age.data
        if field.data is not None and oldest is not None and field.data > oldest:
            raise ValidationError("The youngest age must not be above the oldest")

    def validate_lead_artists(self, field: Any) -> None:
        if any(user_id not in self._artists for user_id in field.data or []):
            raise ValidationError("Select lead artists from the list")

    def course_fields(self, schedule: Schedule) -> CourseFields:
        return CourseFields(
            title=self.title.data,
            description=self.description.data or "",
            art_form=self.art_form.data,
            provider=self._providers[self.provider.data],
            contract=self._contracts[self.contract.data],
            venue=self._venues[self.venue.data],
            capacity=self.capacity.data,
            schedule=schedule,
            pathways=[Pathway(value) for value in self.pathways.data or []],
            min_age=self.min_age.data,
            max_age=self.max_age.data,
            cost_per_session_pence=self.cost_per_session.data,
            participant_fee_pence=self.participant_fee.data or None,
            lead_artists=[
                self._artists[user_id] for user_id in dict.fromkeys(self.lead_artists.data or [])
            ],
        )


class NewCourseForm(CourseForm):
    """A new course also sets its schedule, which is expanded into dated sessions."""

    start_date = UKDateField(
        "First session date",
        message="Enter a real date, for example 3 3 2026",
        validators=[_required("Enter the date of the first session")],
    )
    start_time = ClockTimeField(
        "Start time", validators=[_required("Enter the start time, like 10:00")]
    )
    duration_minutes = WholeNumberField(
        "Session length in minutes",
        message="Enter the session length as a whole number of minutes, like 120",
        validators=[_required("Enter the session length in minutes")],
    )
    frequency = RadioField(
        "How often",
        choices=[SelectChoice(f.value, f.label) for f in Frequency],
        coerce=_enum_coercer(Frequency),
        validate_choice=False,
        default=Frequency.WEEKLY.value,
        validators=[DataRequired("Select how often the course meets")],
    )
    sessions = WholeNumberField(
        "Number of sessions",
        message="Enter the number of sessions as a whole number, like 8",
        validators=[_required("Enter the number of sessions")],
    )
    taster_sessions = WholeNumberField(
        "Taster sessions (optional)",
        message="Enter the number of taster sessions as a whole number, like 2",
    )

    SCHEDULE_FIELDS = (
        "start_date",
        "start_time",
        "duration_minutes",
        "frequency",
        "sessions",
        "taster_sessions",
    )

    def schedule(self) -> Schedule:
        return Schedule(
            start_date=_given(self.start_date.data),
            start_time=self.start_time.data,
            duration_minutes=self.duration_minutes.data,
            frequency=self.frequency.data,
            sessions=self.sessions.data,
            taster_sessions=self.taster_sessions.data or 0,
        )

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if any(getattr(self, name).errors for name in self.SCHEDULE_FIELDS):
            return False
        try:
            expand(self.schedule())
        except InvalidSchedule as error:
            show_errors(self, error.errors)
            return False
        return valid


def show_errors(form: Any, errors: dict[str, list[str]]) -> None:
    """Put errors from a service at their fields; any without a field go to the top."""
    for name, messages in errors.items():
        field = getattr(form, SERVICE_FIELDS.get(name, name), None)
        if isinstance(field, Field):
            field.errors = [*field.errors, *messages]
        else:
            form.form_errors.extend(messages)


def stored_schedule(course: Course) -> Schedule:
    return Schedule(
        start_date=course.start_date,
        start_time=course.start_time,
        duration_minutes=course.duration_minutes,
        frequency=course.frequency,
        sessions=course.session_count,
        taster_sessions=course.taster_count,
    )


def course_form_data(course: Course) -> dict[str, Any]:
    """A stored course as the edit form's initial data."""
    return {
        "title": course.title,
        "description": course.description,
        "art_form": course.art_form,
        "provider": course.provider_id,
        "contract": course.contract_id,
        "venue": course.venue_id,
        "pathways": list(course.pathways or []),
        "min_age": course.min_age,
        "max_age": course.max_age,
        "capacity": course.capacity,
        "cost_per_session": course.cost_per_session_pence,
        "participant_fee": course.participant_fee_pence,
        "lead_artists": [user.id for user in course.lead_artists],
    }


# List filter ---------------------------------------------------------------------------------


class CourseFilterForm(FilterForm):
    contract = _choice("Contract")

    def __init__(self, formdata: Any, contracts: Iterable[tuple[int, str]]):
        super().__init__(formdata)
        self.contract.choices = [SelectChoice("", "All contracts")] + [
            SelectChoice(str(id_), name) for id_, name in contracts
        ]

    @property
    def contract_id(self) -> int | None:
        return _int_or_none(self.contract.data)
