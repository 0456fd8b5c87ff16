"""Courses over the API: the directory, sessions, enrolments and waiting lists, registers,
wellbeing questionnaires and contracts.

Artists only ever receive what a register needs about a person: the enrolment id, their name,
access needs and phone number. NHS numbers and referral reasons never appear in these answers.
Rules that need the whole request (a schedule, register entries, targets, a questionnaire's
answers) are the services' own: what they refuse is answered by the handlers in `referrals.api`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, TypeVar, get_args

from flask import redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    computed_field,
    field_validator,
)
from sqlalchemy import Row, func, select
from sqlalchemy.orm import joinedload

from referrals import clock
from referrals import openapi as api
from referrals.api import bp
from referrals.api.referrals import Postcode
from referrals.auth.models import Organisation, Role, User
from referrals.courses import models
from referrals.courses import services as courses
from referrals.courses.kpi_targets import InvalidTargets, check_targets, targets_schema
from referrals.courses.models import Attendance, Contract, Course, CourseSession, Enrolment, Venue
from referrals.courses.queries import DirectoryFilters, directory_query
from referrals.courses.register_json import RegisterInput
from referrals.courses.schedule import (
    MAX_DURATION,
    MAX_SESSIONS,
    MAX_TASTERS,
    MIN_DURATION,
    MIN_SESSIONS,
    MIN_TASTERS,
    Frequency,
    Schedule,
)
from referrals.courses.scope import (
    get_course_or_404,
    get_enrolment_or_404,
    get_register_session_or_404,
    sees_contract_cost,
)
from referrals.dates import DateRefused, check_contract, check_recorded
from referrals.extensions import db
from referrals.intake.models import Referral
from referrals.intake.scope import scoped_referrals
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import ITEM_MAX, ITEM_MIN, Instrument, Timepoint
from referrals.problems import validation_problem
from referrals.security import STAFF, allow, public
from referrals.text import TEXT_MAX
from referrals.typed import Body, Flag, Id, Text, Whole, dated, either, integral, limits, refuse
from referrals.vocab import ArtForm, Pathway

R = TypeVar("R")
ENROLLING = (Role.LINK_WORKER, Role.ADMIN)
REGISTER_TAKERS = (Role.ARTIST, Role.ADMIN)
WELLBEING_RECORDERS = (Role.ARTIST, Role.LINK_WORKER, Role.ADMIN)
ENROLMENT_READERS = (Role.ADMIN, Role.LINK_WORKER, Role.ARTIST, Role.REFERRER)
CONTRACT_READERS = (Role.ADMIN, Role.COMMISSIONER)

ITEMS_MAX = 100
ONE_VENUE = "Give the venue, or the venue_id of a known one"

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)
Title = Annotated[str, Text(courses.TITLE_MAX, required=True)]
Free = Annotated[str, Text(TEXT_MAX)]
Reason = Annotated[str, Text(TEXT_MAX, required=True)]


Pence = Annotated[int, Field(ge=0, le=courses.COST_MAX_PENCE), BeforeValidator(integral)]
Age = Annotated[int, Field(ge=0, le=courses.AGE_MAX), BeforeValidator(integral)]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::00)?$")


def _clock(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise refuse("Enter a time as HH:MM on the 24-hour clock, for example 10:00")
    return dt.time(int(match[1]), int(match[2]))


Clock = Annotated[
    dt.time,
    PlainValidator(_clock),
    PlainSerializer(lambda value: f"{value:%H:%M}", return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
            "description": "Local time in Europe/London, HH:MM",
            "examples": ["10:00"],
        }
    ),
]


# Requests ---------------------------------------------------------------------------------


class VenueInput(Body):
    name: Title
    address: Annotated[str, Text(courses.ADDRESS_MAX, required=True)]
    postcode: Postcode
    accessibility: Free = ""


class ScheduleInput(Body):
    """Sessions are generated on the start date's weekday; occurrences on England bank holidays
    are skipped and the course runs on, so `sessions` (plus `taster_sessions`, held first)
    sessions are always created. Every session must fall inside the course's contract."""

    start_date: dt.date
    start_time: Clock
    duration_minutes: Annotated[Whole, limits(MIN_DURATION, MAX_DURATION)]
    frequency: Frequency
    sessions: Annotated[Whole, limits(MIN_SESSIONS, MAX_SESSIONS)]
    taster_sessions: Annotated[Whole, limits(MIN_TASTERS, MAX_TASTERS, default=0)] = 0


class CourseInput(Body):
    """Give the venue either as `venue` (a new venue) or as `venue_id`."""

    title: Title
    description: Free = ""
    art_form: ArtForm
    provider_id: Id = Field(description="An organisation of kind provider")
    contract_id: Id
    venue: VenueInput | None = None
    venue_id: Annotated[
        Id | None,
        either("venue", "Give venue or venue_id, not both", ONE_VENUE),
    ] = Field(default=None, validate_default=True)
    capacity: Annotated[int, Field(ge=1, le=courses.CAPACITY_MAX), BeforeValidator(integral)]
    cost_per_session_pence: Pence = Field(
        default=0, description="What the contract pays the provider for one session, in pence"
    )
    participant_fee_pence: Pence | None = Field(
        default=None, description="What a participant pays per session, in pence; null: free"
    )
    pathways: list[Pathway] = []
    min_age: Age | None = None
    max_age: Age | None = None
    lead_artist_ids: list[Id] = Field(
        default=[], max_length=100, description="Artists (users) of the provider who lead it"
    )
    schedule: ScheduleInput
    required = {
        "title": "Enter the course title",
        "art_form": "Choose the art form",
        "provider_id": "Choose the arts provider",
        "contract_id": "Choose the contract",
        "capacity": "Enter the capacity",
        "schedule": "Give the schedule",
        "venue.name": "Enter the venue's name",
        "venue.address": "Enter the venue's address",
        "venue.postcode": "Enter the venue's postcode",
        "schedule.start_date": "Enter the date of the first session",
        "schedule.start_time": "Enter the time sessions start",
        "schedule.duration_minutes": "Enter the session length",
        "schedule.frequency": "Choose weekly or fortnightly",
        "schedule.sessions": "Enter the number of sessions",
    }


class EnrolmentInput(Body):
    referral_id: Id = Field(description="An assessed referral")
    late_start_confirmed: bool = Field(
        default=False,
        description="Needed when so few sessions are left that the person cannot complete the "
        "course: they have been told, and want to join",
    )
    required = {"referral_id": "Give the referral to enrol"}


class WithdrawInput(Body):
    reason: Reason
    required = {"reason": "Give a reason"}


def _only_cancelled(status: str) -> str:
    if status != models.SessionStatus.CANCELLED.value:
        raise refuse("Only cancelled can be set; saving the register delivers it")
    return status


class SessionPatch(Body):
    status: Annotated[str, AfterValidator(_only_cancelled), WithJsonSchema({"const": "cancelled"})]
    reason: Reason
    required = {
        "status": "Give the new status: cancelled",
        "reason": "Give a reason for cancelling",
    }


class WellbeingInput(Body):
    instrument: Instrument
    timepoint: Timepoint
    items: list[Any] = Field(
        max_length=ITEMS_MAX,
        description="One answer per item, in order: 7 for SWEMWBS, 14 for WEMWBS",
        json_schema_extra={"items": {"type": "integer", "minimum": ITEM_MIN, "maximum": ITEM_MAX}},
    )
    recorded_on: Annotated[dt.date, api.formatted("past-date"), dated(check_recorded)] | None = (
        Field(default=None, description="Default today; from 2000-01-01, never in the future")
    )
    required = {
        "instrument": "Choose SWEMWBS or WEMWBS",
        "timepoint": "Choose baseline, end or follow_up",
        "items": "Give the answers, one whole number from 1 to 5 per item",
    }


class ContractInput(Body):
    name: Title
    commissioner_id: Id = Field(description="An organisation of kind commissioner")
    start_date: Annotated[dt.date, api.formatted("term-date")]
    end_date: Annotated[dt.date, api.formatted("term-date")] = Field(
        description="On or after start_date; a contract runs for at most 10 years"
    )
    value_pence: (
        Annotated[int, Field(ge=0, le=courses.CONTRACT_VALUE_MAX_PENCE), BeforeValidator(integral)]
        | None
    ) = Field(default=None, description="What the contract is worth over its whole term, in pence")
    targets: Any = Field(default=None, json_schema_extra=targets_schema())
    required = {
        "name": "Enter the contract's name",
        "commissioner_id": "Choose the commissioning organisation",
        "start_date": "Enter the start date",
        "end_date": "Enter the end date",
    }

    @field_validator("end_date")
    @classmethod
    def _term(cls, end: dt.date, info: ValidationInfo) -> dt.date:
        if "start_date" in info.data:
            try:
                check_contract(info.data["start_date"], end, (info.context or {})["today"])
            except DateRefused as refused:
                raise refuse(str(refused), refused.field) from refused
        return end


class CourseQuery(api.PageQuery):
    art_form: ArtForm | None = None
    pathway: Pathway | None = Field(default=None, description="Courses for this pathway")
    weekday: (
        Annotated[
            Weekday, BeforeValidator(lambda day: day.lower() if isinstance(day, str) else day)
        ]
        | None
    ) = Field(default=None, description="Courses that meet on this day")
    provider_id: Id | None = None
    has_places: Flag | None = Field(
        default=None, description="true: only courses with a place left; false: only full courses"
    )


# Answers ----------------------------------------------------------------------------------


class Timed(api.Answer):
    start_time: Clock
    duration_minutes: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def end_time(self) -> Clock:
        start = dt.datetime.combine(dt.date(2000, 1, 1), self.start_time)
        return (start + dt.timedelta(minutes=self.duration_minutes)).time()


class VenueOut(api.Answer):
    __annotations__ = api.columns(Venue, "id name address postcode accessibility")


class CourseSchedule(Timed):
    start_date: dt.date
    frequency: Frequency
    weekday: Weekday
    sessions: int = Field(description="Regular sessions")
    taster_sessions: int = Field(description="Taster sessions, held first")
    end_date: dt.date | None = Field(description="The date of the last session not cancelled")


class CourseOut(api.Answer):
    __annotations__ = api.columns(Course, "id title description art_form provider_id")
    provider_name: str
    contract_id: int
    venue: VenueOut
    capacity: int
    places_left: int = Field(
        description="Capacity less places taken: enrolled, or offered and unanswered"
    )
    cost_per_session_pence: int = Field(
        default=0,
        description="What the contract pays the provider for one session, in pence; given to "
        "admins and commissioners only, and never a charge to the participant",
    )
    participant_fee_pence: int | None = Field(
        description="What a participant pays per session, in pence; null: free"
    )
    pathways: list[Pathway]
    min_age: int | None
    max_age: int | None
    schedule: CourseSchedule

    source = (Course, Row)

    @classmethod
    def read(cls, course: Any, context: dict[str, Any]) -> Any:
        """The course with its places left and last session, counted here or given by the
        directory's row; the contract's cost per session only for those who may see it."""
        if isinstance(course, Row):  # see `directory_query`
            row, course = course, course[0]
            places, last = max(0, course.capacity - row.taken), row.ends_on
        else:
            places, last = courses.places_left(course), courses.course_end(course.id)
        schedule = {
            "start_date": course.start_date,
            "start_time": course.start_time,
            "duration_minutes": course.duration_minutes,
            "frequency": course.frequency,
            "weekday": WEEKDAYS[course.start_date.weekday()],
            "sessions": course.session_count,
            "taster_sessions": course.taster_count,
            "end_date": last,
        }
        fields = {name: getattr(course, name, None) for name in cls.model_fields}
        if not sees_contract_cost(context["viewer"]):
            del fields["cost_per_session_pence"]
        return fields | {
            "provider_name": course.provider.name,
            "pathways": list(course.pathways or []),
            "places_left": places,
            "schedule": schedule,
        }


class SessionOut(Timed):
    __annotations__ = api.columns(
        CourseSession,
        "id course_id sequence date is_taster status moved_from cancelled_reason register_saved_at",
    )


class CourseWithSessions(CourseOut):
    sessions: list[SessionOut]


class Mark(api.Answer):
    __annotations__ = api.columns(Attendance, "status mood_before mood_after note")


_MARKED = ("session_id", "status", "mood_before", "mood_after", "note")
_DATES = ("created_at", "waitlisted_at", "enrolled_at", "offer_expires_on", "completed_at")


class AttendanceMark(Mark):
    session_id: int
    date: dt.date

    source = Attendance

    @classmethod
    def read(cls, mark: Any, context: dict[str, Any]) -> Any:
        return {name: getattr(mark, name) for name in _MARKED} | {"date": mark.session.date}


class RegisterPerson(api.Answer):
    """What a register needs about a person, and nothing more."""

    name: str
    access_needs: str
    phone: str | None


def _person(enrolment: Enrolment) -> dict[str, Any]:
    patient = enrolment.referral.patient
    return {"name": patient.full_name, "access_needs": patient.access_needs, "phone": patient.phone}


class EnrolmentOut(api.Answer):
    """For artists: `id`, `course_id`, `course_title`, `status`, `person` and `attendance`
    only. For link workers, referrers and admins: the enrolment's dates and its referral, no
    `person`."""

    id: int
    course_id: int
    course_title: str
    status: models.EnrolmentStatus
    waitlist_position: int | None = Field(
        default=None, description="1 for the next person offered a place; null unless waitlisted"
    )
    referral_id: int = 0
    created_at: dt.datetime | None = None
    waitlisted_at: dt.datetime | None = None
    enrolled_at: dt.datetime | None = None
    offer_expires_on: dt.date | None = Field(
        default=None, description="While offered a place: the last day to accept it"
    )
    completed_at: dt.datetime | None = None
    withdrawn_at: dt.datetime | None = None
    withdrawn_reason: str = ""
    person: RegisterPerson | None = None
    attendance: list[AttendanceMark]

    source = Enrolment

    @classmethod
    def read(cls, enrolment: Any, context: dict[str, Any]) -> Any:
        """As the viewer may see it; fields left out are not written (`exclude_unset`)."""
        marks = sorted(enrolment.attendance, key=lambda mark: (mark.session.date, mark.session_id))
        shown = {name: getattr(enrolment, name) for name in ("id", "course_id", "status")}
        shown |= {"course_title": enrolment.course.title, "attendance": marks}
        if "offered" in context:
            shown["offered_to"] = getattr(context["offered"], "id", None)
        if context["viewer"].role == Role.ARTIST:
            return shown | {"person": _person(enrolment)}
        named = (*_DATES, "referral_id", "withdrawn_at", "withdrawn_reason")
        shown |= {name: getattr(enrolment, name) for name in named}
        return shown | {"waitlist_position": courses.waitlist_position(enrolment)}


class WithdrawnEnrolment(EnrolmentOut):
    offered_to: int | None = Field(
        default=None, description="The enrolment offered the freed place, if anyone was"
    )


class RegisterLine(RegisterPerson):
    enrolment_id: int
    mark: Mark | None = Field(description="What the register records; null until it is taken")


class Register(api.Answer):
    session: SessionOut
    course_title: str
    editable: bool = Field(description="Whether the caller may save this register today")
    entries: list[RegisterLine]


class Wellbeing(api.Answer):
    __annotations__ = api.columns(
        WellbeingAssessment, "id enrolment_id instrument timepoint items raw_score"
    )
    metric_score: float = Field(
        description="SWEMWBS: the raw total converted with the published table"
    )
    recorded_on: dt.date


class ContractOut(api.Answer):
    __annotations__ = api.columns(
        Contract, "id name commissioner_id start_date end_date value_pence"
    )
    targets: dict[str, Any] = Field(
        description="KPI code to span (month, year_to_date) to levels: minimum, expected, stretch"
    )


COURSE = api.scoped(get_course_or_404)
ENROLMENT = api.scoped(get_enrolment_or_404)
REGISTER = api.scoped(get_register_session_or_404)
# How the course rules' refusals are answered (see the handlers in `referrals.api`).
RULE = (409, "course-rule", None)  # 422 when a reason is missing
FIELD_RULE = (422, "course-rule", None)  # the request's own fields break a rule
ENROL = (409, "course-rule", "referral_id")
REFUSED = (409, "register-refused", None)


# Records named in the body ----------------------------------------------------------------


def _found(kind: type[R], record_id: int | None, errors: dict[str, list[str]], field: str) -> Any:
    """The record an id in the body names; unknown: a message at its field."""
    found = db.session.get(kind, record_id) if record_id is not None else None
    if record_id is not None and found is None:
        errors[field] = [f"No {kind.__name__.lower()} has this id"]
    return found


# The directory ----------------------------------------------------------------------------


@bp.get("/courses")
@allow(STAFF)
@api.operation("courses", answer=api.Page[CourseOut])
def list_courses(query: CourseQuery) -> Any:
    """The course directory, earliest start first

    Places left and end dates come in one query.

    Who may call it: all staff (artists see their own provider's courses)."""
    filters = DirectoryFilters(
        **query.model_dump(include={"art_form", "pathway", "provider_id", "has_places"}),
        weekday=WEEKDAYS.index(query.weekday) if query.weekday else None,
        include_finished=True,
    )
    found = directory_query(current_user, filters, clock.today()).order_by(None)
    return api.paginate(found.order_by(Course.start_date, Course.id), query, rows=True)


@bp.get("/courses/<int:course_id>")
@allow(STAFF)
@api.operation("courses", answer=CourseOut, load=COURSE)
def get_course(course: Course) -> Course:
    """A course in the directory

    Who may call it: all staff (artists: their own provider's courses)."""
    return course


def _course_fields(body: CourseInput) -> courses.CourseFields:
    """The course as the service records it; the records its ids name must exist."""
    errors: dict[str, list[str]] = {}
    provider = _found(Organisation, body.provider_id, errors, "provider_id")
    contract = _found(Contract, body.contract_id, errors, "contract_id")
    venue = _found(Venue, body.venue_id, errors, "venue_id")
    ids = list(dict.fromkeys(body.lead_artist_ids))
    artists = list(db.session.scalars(select(User).where(User.id.in_(ids)))) if ids else []
    if len(artists) < len(ids):
        errors["lead_artist_ids"] = ["Each must be the id of an artist at the provider"]
    if errors:
        raise validation_problem(errors)
    if body.venue is not None:
        venue = courses.create_venue(current_user, courses.VenueFields(**body.venue.model_dump()))
    return courses.CourseFields(
        **body.model_dump(include={"title", "description", "art_form", "capacity", "min_age"}),
        **body.model_dump(include={"max_age", "cost_per_session_pence", "participant_fee_pence"}),
        provider=provider,
        contract=contract,
        venue=venue,
        schedule=Schedule(**body.schedule.model_dump()),
        pathways=list(dict.fromkeys(body.pathways)),
        lead_artists=artists,
    )


@bp.post("/courses")
@allow(Role.ADMIN)
@api.operation("courses", answer=CourseWithSessions, refusal=FIELD_RULE, created="api.get_course")
def create_course_view(body: CourseInput) -> Course:
    """Create a course and its sessions

    Who may call it: admin."""
    return courses.create_course(current_user, _course_fields(body))


@bp.get("/courses/<int:course_id>/sessions")
@allow(STAFF)
@api.operation("courses", answer=api.Page[SessionOut], load=COURSE)
def list_course_sessions(course: Course, query: api.PageQuery) -> Any:
    """A course's sessions in date order

    Who may call it: all staff who can see the course."""
    sessions = select(CourseSession).where(CourseSession.course_id == course.id)
    sessions = sessions.order_by(CourseSession.date, CourseSession.start_time, CourseSession.id)
    return api.paginate(sessions, query)


# Enrolments -------------------------------------------------------------------------------


@bp.post("/courses/<int:course_id>/enrolments")
@allow(*ENROLLING)
@api.operation(
    "enrolments", answer=EnrolmentOut, load=COURSE, refusal=ENROL, created="api.get_enrolment"
)
def create_enrolment(course: Course, body: EnrolmentInput) -> Enrolment:
    """Enrol an assessed referral, or put them on the waiting list

    The course rules may refuse it (not assessed, already on a course, outside the
    age range, course finished, too late to complete without `late_start_confirmed`).

    Who may call it: link_worker, admin."""
    # Not locked here: enrol() locks the course and then the referral, in that order.
    referral = db.session.scalar(
        scoped_referrals(current_user).where(Referral.id == body.referral_id)
    )
    if referral is None:
        raise validation_problem({"referral_id": ["No referral with this id"]})
    return courses.enrol(
        current_user,
        referral,
        course,
        today=clock.today(),
        late_start_confirmed=body.late_start_confirmed,
    )


@bp.get("/enrolments/<int:enrolment_id>")
@allow(*ENROLMENT_READERS)
@api.operation("enrolments", answer=EnrolmentOut, load=ENROLMENT)
def get_enrolment(enrolment: Enrolment) -> Enrolment:
    """An enrolment, its status and attendance

    Who may call it: admin, link_worker, referrer (their practice's referrals), artist (people on
    their provider's registers, shown with only what a register needs)."""
    courses.enrolment_viewed(current_user, enrolment)
    return enrolment


@bp.post("/enrolments/<int:enrolment_id>/withdraw")
@allow(*ENROLLING)
@api.operation("enrolments", answer=WithdrawnEnrolment, load=ENROLMENT, refusal=RULE)
def withdraw_enrolment(enrolment: Enrolment, body: WithdrawInput) -> api.Shown:
    """Take someone off a course or its waiting list

    `offered_to` names the waiting enrolment offered the freed place.

    Who may call it: link_worker, admin."""
    offered = courses.withdraw(current_user, enrolment, body.reason, today=clock.today())
    return api.Shown(enrolment, {"offered": offered})


# Registers and sessions -------------------------------------------------------------------


def register_of(session: CourseSession) -> tuple[dict[str, Any], list[Enrolment]]:
    """The register as `Register` reads it, and the people on it."""
    people = courses.register_enrolments(session)
    if people:  # one query for everyone's details, not one per person
        ids = [enrolment.referral_id for enrolment in people]
        found = select(Referral).where(Referral.id.in_(ids))
        db.session.scalars(found.options(joinedload(Referral.patient))).all()
    marks = select(Attendance).where(Attendance.session_id == session.id)
    marked = {mark.enrolment_id: mark for mark in db.session.scalars(marks)}
    entries = [
        {"enrolment_id": one.id, "mark": marked.get(one.id), **_person(one)} for one in people
    ]
    editable = courses.can_edit_register(current_user, session, clock.today())
    shown = {"session": session, "course_title": session.course.title, "entries": entries}
    return shown | {"editable": editable}, people


@bp.get("/sessions/<int:session_id>/register")
@allow(*REGISTER_TAKERS)
@api.operation("registers", answer=Register, load=REGISTER)
def get_register(session: CourseSession) -> dict[str, Any]:
    """A session's register: who is expected, and what has been recorded

    Who may call it: artist (their provider's courses), admin."""
    shown, people = register_of(session)
    courses.people_viewed(current_user, "register.viewed", people, session_id=session.id)
    return shown


@bp.put("/sessions/<int:session_id>/register")
@allow(*REGISTER_TAKERS)
@api.operation("registers", answer=Register, load=REGISTER, refusal=REFUSED)
def save_register_view(session: CourseSession, body: RegisterInput) -> dict[str, Any]:
    """Save a session's register; the session becomes delivered

    Invalid entries are named like `entries.2.mood_after`; nothing is saved.

    Who may call it: artist of the course's provider (on the day and for 7 days after), admin
    (any date from the day of the session)."""
    courses.save_register(current_user, session, body.register_entries(), today=clock.today())
    return register_of(session)[0]


@bp.patch("/sessions/<int:session_id>")
@allow(*REGISTER_TAKERS)
@api.operation("registers", answer=SessionOut, load=REGISTER, refusal=RULE)
def update_session(session: CourseSession, body: SessionPatch) -> CourseSession:
    """Cancel a session

    A session with a register cannot be cancelled.

    Who may call it: artist of the course's provider, admin."""
    courses.cancel_session(current_user, session, body.reason)
    return session


# Wellbeing --------------------------------------------------------------------------------


@bp.post("/enrolments/<int:enrolment_id>/wellbeing")
@allow(*WELLBEING_RECORDERS)
@api.operation(
    "wellbeing", answer=Wellbeing, status=201, headers={}, load=ENROLMENT, refusal=FIELD_RULE
)
def create_wellbeing(enrolment: Enrolment, body: WellbeingInput) -> Any:
    """Record a wellbeing questionnaire

    Who may call it: artist (people on their provider's registers), link_worker, admin."""
    today = clock.today()
    return courses.record_wellbeing(
        current_user,
        enrolment,
        **body.model_dump(include={"instrument", "timepoint", "items"}),
        recorded_on=body.recorded_on or today,
        today=today,
    )


# Contracts --------------------------------------------------------------------------------


def _contract_fields(body: ContractInput) -> courses.ContractFields:
    """The contract as the service records it: a new name, a known commissioner, targets by
    the one targets rule (the admin form's too)."""
    errors: dict[str, list[str]] = {}
    taken = select(Contract.id).where(func.lower(Contract.name) == body.name.lower())
    if db.session.scalar(taken):
        errors["name"] = ["A contract with this name already exists"]
    commissioner = _found(Organisation, body.commissioner_id, errors, "commissioner_id")
    try:
        targets = check_targets(body.targets)
    except InvalidTargets as invalid:
        errors |= {f"targets.{key}".rstrip("."): value for key, value in invalid.errors.items()}
    if errors:
        raise validation_problem(errors)
    fields = body.model_dump(include={"name", "start_date", "end_date", "value_pence"})
    return courses.ContractFields(**fields, commissioner=commissioner, targets=targets)


@bp.post("/contracts")
@allow(Role.ADMIN)
@api.operation("contracts", answer=ContractOut, status=201, headers={}, refusal=FIELD_RULE)
def create_contract(body: ContractInput) -> Contract:
    """Create a contract with its monthly KPI targets

    Who may call it: admin."""
    return courses.save_contract(current_user, _contract_fields(body), today=clock.today())


@bp.get("/contracts")
@allow(*CONTRACT_READERS)
@api.operation("contracts", answer=api.Page[ContractOut])
def list_contracts(query: api.PageQuery) -> Any:
    """List contracts

    Who may call it: admin (all), commissioner (their organisation's)."""
    contracts = select(Contract).order_by(Contract.start_date.desc(), Contract.id)
    if current_user.role != Role.ADMIN:
        contracts = contracts.where(Contract.commissioner_id == current_user.organisation_id)
    return api.paginate(contracts, query)


# Open Referral UK -------------------------------------------------------------------------


@bp.get("/openreferral/services")
@public
@api.operation("courses", status=308)
def openreferral_services() -> ResponseReturnValue:
    """Moved: the same services at /openreferral/services (Open Referral UK 3.0)

    The feed moved out of the token-only API to the open ORUK 3.0 paths; one shape only.

    Who may call it: anyone; no token needed."""
    query = request.query_string.decode("latin-1")
    return redirect(url_for("openreferral.services") + (f"?{query}" if query else ""), code=308)
