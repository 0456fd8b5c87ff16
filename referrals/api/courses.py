"""Courses over the API: the directory (also shaped as Open Referral UK services), sessions,
enrolments and waiting lists, registers, wellbeing questionnaires and contracts.

Artists only ever receive what a register needs about a person: the enrolment id, their name,
access needs and phone number. NHS numbers and referral reasons never appear in these answers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import abort, current_app, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import String, cast, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from referrals.api import bp
from referrals.api.body import json_object
from referrals.api.openapi import (
    PAGE_PARAMETERS,
    PROBLEM_RESPONSE,
    format_schema,
    integral,
    json_response,
    operation,
    page_of,
    ref,
    register_schema,
    text_schema,
)
from referrals.api.pagination import page_args, paginate
from referrals.api.problems import ApiProblem, query_problem, validation_problem
from referrals.auth.models import Organisation, Role, User
from referrals.courses.kpi_targets import (
    TARGET_LEVELS,
    TARGET_SPANS,
    InvalidTargets,
    check_targets,
    targets_schema,
)
from referrals.courses.models import (
    HOLDS_PLACE,
    Attendance,
    AttendanceStatus,
    Contract,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.courses.register_rules import MOOD_MAX, MOOD_MIN, NOTE_MAX, RegisterEntry
from referrals.courses.schedule import Frequency, InvalidSchedule, Schedule
from referrals.courses.schedule import validate as schedule_errors
from referrals.courses.scope import (
    course_scope,
    get_course_or_404,
    get_enrolment_or_404,
    get_register_session_or_404,
    sees_contract_cost,
)
from referrals.courses.services import (
    CONTRACT_VALUE_MAX_PENCE,
    ContractFields,
    CourseFields,
    CourseRuleBroken,
    RegisterRefused,
    VenueFields,
    can_edit_register,
    cancel_session,
    course_end,
    create_course,
    create_venue,
    enrol,
    enrolment_viewed,
    people_viewed,
    places_left,
    record_wellbeing,
    register_enrolments,
    save_contract,
    save_register,
    waitlist_position,
    withdraw,
)
from referrals.dates import check_contract, check_recorded, refusal
from referrals.extensions import db
from referrals.ids import MAX_ID
from referrals.intake.lifecycle import TransitionRefused
from referrals.intake.models import Referral
from referrals.intake.scope import scoped_referrals
from referrals.intake.validation import InvalidValue, clean_postcode
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import Instrument, InvalidScores, Timepoint, validate_items
from referrals.security import STAFF, allow, public
from referrals.vocab import ArtForm, Pathway

E = TypeVar("E", bound=enum.Enum)

ENROLLING = (Role.LINK_WORKER, Role.ADMIN)
REGISTER_TAKERS = (Role.ARTIST, Role.ADMIN)
WELLBEING_RECORDERS = (Role.ARTIST, Role.LINK_WORKER, Role.ADMIN)
ENROLMENT_READERS = (Role.ADMIN, Role.LINK_WORKER, Role.ARTIST, Role.REFERRER)
CONTRACT_READERS = (Role.ADMIN, Role.COMMISSIONER)


TITLE_MAX = 200
TEXT_MAX = 4000
ADDRESS_MAX = 1000
CAPACITY_MAX = 1000
COST_MAX_PENCE = 1_000_000  # £10,000 a session
AGE_MAX = 120
REGISTER_ENTRIES_MAX = 500
ITEMS_MAX = 100

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::00)?$")

COURSE_FIELDS = frozenset(
    {
        "title",
        "description",
        "art_form",
        "provider_id",
        "contract_id",
        "venue",
        "venue_id",
        "capacity",
        "cost_per_session_pence",
        "participant_fee_pence",
        "pathways",
        "min_age",
        "max_age",
        "lead_artist_ids",
        "schedule",
    }
)
VENUE_FIELDS = frozenset({"name", "address", "postcode", "accessibility"})
SCHEDULE_FIELDS = frozenset(
    {"start_date", "start_time", "duration_minutes", "frequency", "sessions", "taster_sessions"}
)
ENTRY_FIELDS = frozenset({"enrolment_id", "status", "mood_before", "mood_after", "note"})
CONTRACT_FIELDS = frozenset(
    {"name", "commissioner_id", "start_date", "end_date", "targets", "value_pence"}
)


def _values(vocabulary: Iterable[Any]) -> list[str]:
    return [member.value for member in vocabulary]


# OpenAPI schemas -----------------------------------------------------------------------

_DATE = {"type": "string", "format": "date"}
_NULLABLE_DATE = {"type": ["string", "null"], "format": "date"}
_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
_CLOCK_SCHEMA = {
    "type": "string",
    "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
    "description": "Local time in Europe/London, HH:MM",
    "examples": ["10:00"],
}
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_MOOD = {"type": ["integer", "null"], "minimum": MOOD_MIN, "maximum": MOOD_MAX}
_VENUE_PROPERTIES: dict[str, Any] = {
    "name": text_schema(TITLE_MAX, required=True),
    "address": text_schema(ADDRESS_MAX, required=True),
    "postcode": {
        **text_schema(12, required=True),
        **format_schema("uk-postcode"),
    },
    "accessibility": text_schema(TEXT_MAX),
}

register_schema(
    "Venue",
    {
        "type": "object",
        "required": ["id", "name", "address", "postcode", "accessibility"],
        "properties": {"id": {"type": "integer"}, **_VENUE_PROPERTIES},
    },
)
register_schema(
    "CourseSchedule",
    {
        "type": "object",
        "required": [
            "start_date",
            "start_time",
            "end_time",
            "duration_minutes",
            "frequency",
            "weekday",
            "sessions",
            "taster_sessions",
            "end_date",
        ],
        "properties": {
            "start_date": _DATE,
            "start_time": _CLOCK_SCHEMA,
            "end_time": _CLOCK_SCHEMA,
            "duration_minutes": {"type": "integer"},
            "frequency": {"type": "string", "enum": _values(Frequency)},
            "weekday": {"type": "string", "enum": list(WEEKDAYS)},
            "sessions": {"type": "integer", "description": "Regular sessions"},
            "taster_sessions": {"type": "integer", "description": "Taster sessions, held first"},
            "end_date": {
                **_NULLABLE_DATE,
                "description": "The date of the last session that is not cancelled",
            },
        },
    },
)
register_schema(
    "Course",
    {
        "type": "object",
        "required": [
            "id",
            "title",
            "art_form",
            "provider_id",
            "contract_id",
            "venue",
            "capacity",
            "places_left",
            "participant_fee_pence",
            "pathways",
            "schedule",
        ],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "art_form": {"type": "string", "enum": _values(ArtForm)},
            "provider_id": {"type": "integer"},
            "provider_name": {"type": "string"},
            "contract_id": {"type": "integer"},
            "venue": ref("Venue"),
            "capacity": {"type": "integer"},
            "places_left": {
                "type": "integer",
                "description": "Capacity less places taken: enrolled, or offered and unanswered",
            },
            "cost_per_session_pence": {
                "type": "integer",
                "description": (
                    "What the contract pays the provider for one session, in pence; given to "
                    "admins and commissioners only, and never a charge to the participant"
                ),
            },
            "participant_fee_pence": {
                "type": ["integer", "null"],
                "description": "What a participant pays per session, in pence; null: free",
            },
            "pathways": {"type": "array", "items": {"type": "string", "enum": _values(Pathway)}},
            "min_age": {"type": ["integer", "null"]},
            "max_age": {"type": ["integer", "null"]},
            "schedule": ref("CourseSchedule"),
        },
    },
)
register_schema(
    "CourseSession",
    {
        "type": "object",
        "required": ["id", "course_id", "sequence", "date", "status"],
        "properties": {
            "id": {"type": "integer"},
            "course_id": {"type": "integer"},
            "sequence": {"type": "integer"},
            "date": _DATE,
            "start_time": _CLOCK_SCHEMA,
            "end_time": _CLOCK_SCHEMA,
            "duration_minutes": {"type": "integer"},
            "is_taster": {"type": "boolean"},
            "status": {"type": "string", "enum": _values(SessionStatus)},
            "moved_from": _NULLABLE_DATE,
            "cancelled_reason": {"type": "string"},
            "register_saved_at": _TIMESTAMP,
        },
    },
)
register_schema(
    "CourseWithSessions",
    {
        "allOf": [
            ref("Course"),
            {
                "type": "object",
                "required": ["sessions"],
                "properties": {
                    "sessions": {"type": "array", "items": ref("CourseSession")},
                },
            },
        ]
    },
)
register_schema(
    "CourseInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "art_form", "provider_id", "contract_id", "capacity", "schedule"],
        "description": "Give the venue either as `venue` (a new venue) or as `venue_id`.",
        "oneOf": [{"required": ["venue"]}, {"required": ["venue_id"]}],
        "properties": {
            "title": text_schema(TITLE_MAX, required=True),
            "description": text_schema(TEXT_MAX),
            "art_form": {"type": "string", "enum": _values(ArtForm)},
            "provider_id": {**_ID, "description": "An organisation of kind provider"},
            "contract_id": _ID,
            "venue": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "address", "postcode"],
                "properties": _VENUE_PROPERTIES,
            },
            "venue_id": _ID,
            "capacity": {"type": "integer", "minimum": 1, "maximum": CAPACITY_MAX},
            "cost_per_session_pence": {
                "type": "integer",
                "minimum": 0,
                "maximum": COST_MAX_PENCE,
                "default": 0,
                "description": "What the contract pays the provider for one session, in pence",
            },
            "participant_fee_pence": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": COST_MAX_PENCE,
                "default": None,
                "description": "What a participant pays per session, in pence; null: free",
            },
            "pathways": {
                "type": "array",
                "items": {"type": "string", "enum": _values(Pathway)},
                "uniqueItems": True,
            },
            "min_age": {"type": ["integer", "null"], "minimum": 0, "maximum": AGE_MAX},
            "max_age": {"type": ["integer", "null"], "minimum": 0, "maximum": AGE_MAX},
            "lead_artist_ids": {
                "type": "array",
                "items": _ID,
                "description": "Artists (users) of the provider who lead the course",
            },
            "schedule": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "start_date",
                    "start_time",
                    "duration_minutes",
                    "frequency",
                    "sessions",
                ],
                "description": (
                    "Sessions are generated on the start date's weekday; occurrences on England "
                    "bank holidays are skipped and the course runs on, so `sessions` (plus "
                    "`taster_sessions`, held first) sessions are always created. Every session "
                    "must fall inside the course's contract."
                ),
                "properties": {
                    "start_date": _DATE,
                    "start_time": _CLOCK_SCHEMA,
                    "duration_minutes": {"type": "integer", "minimum": 15, "maximum": 480},
                    "frequency": {"type": "string", "enum": _values(Frequency)},
                    "sessions": {"type": "integer", "minimum": 1, "maximum": 200},
                    "taster_sessions": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 10,
                        "default": 0,
                    },
                },
            },
        },
    },
)
register_schema(
    "AttendanceMark",
    {
        "type": "object",
        "required": ["session_id", "date", "status", "mood_before", "mood_after", "note"],
        "properties": {
            "session_id": {"type": "integer"},
            "date": _DATE,
            "status": {"type": "string", "enum": _values(AttendanceStatus)},
            "mood_before": _MOOD,
            "mood_after": _MOOD,
            "note": {"type": "string"},
        },
    },
)
register_schema(
    "RegisterPerson",
    {
        "type": "object",
        "description": "What a register needs about a person, and nothing more",
        "required": ["name", "access_needs", "phone"],
        "properties": {
            "name": {"type": "string"},
            "access_needs": {"type": "string"},
            "phone": {"type": ["string", "null"]},
        },
    },
)
register_schema(
    "Enrolment",
    {
        "type": "object",
        "description": (
            "For artists: `id`, `course_id`, `status`, `person` and `attendance` only. For link "
            "workers, referrers and admins: the enrolment's dates and its referral, no `person`."
        ),
        "required": ["id", "course_id", "status", "attendance"],
        "properties": {
            "id": {"type": "integer"},
            "course_id": {"type": "integer"},
            "course_title": {"type": "string"},
            "status": {"type": "string", "enum": _values(EnrolmentStatus)},
            "waitlist_position": {
                "type": ["integer", "null"],
                "description": "1 for the next person offered a place; null unless waitlisted",
            },
            "referral_id": {"type": "integer"},
            "created_at": _TIMESTAMP,
            "waitlisted_at": _TIMESTAMP,
            "enrolled_at": _TIMESTAMP,
            "offer_expires_on": {
                **_NULLABLE_DATE,
                "description": "While offered a place: the last day to accept it",
            },
            "completed_at": _TIMESTAMP,
            "withdrawn_at": _TIMESTAMP,
            "withdrawn_reason": {"type": "string"},
            "person": ref("RegisterPerson"),
            "attendance": {"type": "array", "items": ref("AttendanceMark")},
        },
    },
)
register_schema(
    "EnrolmentInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["referral_id"],
        "properties": {
            "referral_id": {**_ID, "description": "An assessed referral"},
            "late_start_confirmed": {
                "type": "boolean",
                "default": False,
                "description": (
                    "Needed when so few sessions are left that the person cannot complete the "
                    "course: they have been told, and want to join"
                ),
            },
        },
    },
)
register_schema(
    "WithdrawInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": text_schema(TEXT_MAX, required=True)},
    },
)
register_schema(
    "WithdrawnEnrolment",
    {
        "allOf": [
            ref("Enrolment"),
            {
                "type": "object",
                "required": ["offered_to"],
                "properties": {
                    "offered_to": {
                        "type": ["integer", "null"],
                        "description": "The enrolment offered the freed place, if anyone was",
                    }
                },
            },
        ]
    },
)
register_schema(
    "RegisterEntryInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["enrolment_id", "status"],
        "properties": {
            "enrolment_id": _ID,
            "status": {"type": "string", "enum": _values(AttendanceStatus)},
            "mood_before": _MOOD,
            "mood_after": _MOOD,
            "note": text_schema(NOTE_MAX),
        },
    },
)
register_schema(
    "RegisterInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["entries"],
        "properties": {
            "entries": {
                "type": "array",
                "maxItems": REGISTER_ENTRIES_MAX,
                "items": ref("RegisterEntryInput"),
            }
        },
    },
)
register_schema(
    "RegisterLine",
    {
        "type": "object",
        "required": ["enrolment_id", "name", "access_needs", "phone", "mark"],
        "properties": {
            "enrolment_id": {"type": "integer"},
            "name": {"type": "string"},
            "access_needs": {"type": "string"},
            "phone": {"type": ["string", "null"]},
            "mark": {
                "type": ["object", "null"],
                "description": "What the register records for them; null until it is taken",
                "properties": {
                    "status": {"type": "string", "enum": _values(AttendanceStatus)},
                    "mood_before": _MOOD,
                    "mood_after": _MOOD,
                    "note": {"type": "string"},
                },
            },
        },
    },
)
register_schema(
    "Register",
    {
        "type": "object",
        "required": ["session", "editable", "entries"],
        "properties": {
            "session": ref("CourseSession"),
            "course_title": {"type": "string"},
            "editable": {
                "type": "boolean",
                "description": "Whether the caller may save this register today",
            },
            "entries": {"type": "array", "items": ref("RegisterLine")},
        },
    },
)
register_schema(
    "SessionPatch",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "reason"],
        "properties": {
            "status": {"const": "cancelled"},
            "reason": text_schema(TEXT_MAX, required=True),
        },
    },
)
register_schema(
    "WellbeingInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["instrument", "timepoint", "items"],
        "properties": {
            "instrument": {"type": "string", "enum": _values(Instrument)},
            "timepoint": {"type": "string", "enum": _values(Timepoint)},
            "items": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 5},
                "description": "One answer per item, in order: 7 for SWEMWBS, 14 for WEMWBS",
            },
            "recorded_on": {
                **_DATE,
                "description": "Default today; from 2000-01-01, never in the future",
            },
        },
    },
)
register_schema(
    "WellbeingAssessment",
    {
        "type": "object",
        "required": [
            "id",
            "enrolment_id",
            "instrument",
            "timepoint",
            "raw_score",
            "metric_score",
            "recorded_on",
        ],
        "properties": {
            "id": {"type": "integer"},
            "enrolment_id": {"type": "integer"},
            "instrument": {"type": "string", "enum": _values(Instrument)},
            "timepoint": {"type": "string", "enum": _values(Timepoint)},
            "items": {"type": "array", "items": {"type": "integer"}},
            "raw_score": {"type": "integer"},
            "metric_score": {
                "type": "number",
                "description": "SWEMWBS: the raw total converted with the published table",
            },
            "recorded_on": _DATE,
        },
    },
)
_TARGET_LEVELS = {
    "type": "object",
    "additionalProperties": False,
    "required": list(TARGET_LEVELS),
    "description": (
        "minimum <= expected <= stretch, or downwards where lower is better (A2, A3, B3, C6, "
        "E2-E4); percentages 0 to 100; a count of people never 1 to 7"
    ),
    "properties": {level: {"type": "number"} for level in TARGET_LEVELS},
}
_TARGET = {
    "type": "object",
    "additionalProperties": False,
    "description": "Targets by span: the month and the financial year to date",
    "properties": {span: _TARGET_LEVELS for span in TARGET_SPANS},
}
register_schema(
    "ContractInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "commissioner_id", "start_date", "end_date"],
        "properties": {
            "name": text_schema(TITLE_MAX, required=True),
            "commissioner_id": {**_ID, "description": "An organisation of kind commissioner"},
            "start_date": {"type": "string", **format_schema("term-date")},
            "end_date": {
                "type": "string",
                **format_schema("term-date"),
                "description": "On or after start_date; a contract runs for at most 10 years",
            },
            "value_pence": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": CONTRACT_VALUE_MAX_PENCE,
                "description": "What the contract is worth over its whole term, in pence",
            },
            "targets": targets_schema(),
        },
    },
)
register_schema(
    "Contract",
    {
        "type": "object",
        "required": ["id", "name", "commissioner_id", "start_date", "end_date", "targets"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "commissioner_id": {"type": "integer"},
            "start_date": _DATE,
            "end_date": _DATE,
            "value_pence": {"type": ["integer", "null"]},
            "targets": {"type": "object", "additionalProperties": _TARGET},
        },
    },
)
_COURSE_FILTERS: list[dict[str, Any]] = [
    {"name": "art_form", "in": "query", "schema": {"type": "string", "enum": _values(ArtForm)}},
    {
        "name": "pathway",
        "in": "query",
        "description": "Courses for this pathway",
        "schema": {"type": "string", "enum": _values(Pathway)},
    },
    {
        "name": "weekday",
        "in": "query",
        "description": "Courses that meet on this day",
        "schema": {"type": "string", "enum": list(WEEKDAYS)},
    },
    {"name": "provider_id", "in": "query", "schema": _ID},
    {
        "name": "has_places",
        "in": "query",
        "description": "true: only courses with a place left; false: only full courses",
        "schema": {"type": "boolean"},
    },
]
_NOT_FOUND = {**PROBLEM_RESPONSE, "description": "Unknown, or outside the caller's scope"}
_INVALID = {**PROBLEM_RESPONSE, "description": "Invalid fields; `errors` names each one"}


def _conflict(description: str) -> dict[str, Any]:
    return {**PROBLEM_RESPONSE, "description": description}


# Small helpers --------------------------------------------------------------------------


def today() -> date:
    return datetime.now(ZoneInfo(current_app.config.get("TIMEZONE", "Europe/London"))).date()


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _clock(value: time) -> str:
    return f"{value:%H:%M}"


def _end_clock(start: time, minutes: int) -> str:
    return _clock((datetime.combine(date(2000, 1, 1), start) + timedelta(minutes=minutes)).time())


def _created(body: dict[str, Any], location: str | None = None) -> ResponseReturnValue:
    response = jsonify(body)
    response.status_code = 201
    if location:
        response.headers["Location"] = location
    return response


# Course rules name some inputs as the page forms do; the API's body names them differently.
_BODY_FIELD = {"lead_artists": "lead_artist_ids"}


def _rule_problem(error: CourseRuleBroken, status: int = 409) -> ApiProblem:
    """A request the course rules refuse; nothing it started is kept."""
    db.session.rollback()
    message = str(error)
    errors = {_BODY_FIELD.get(error.field, error.field): [message]} if error.field else None
    return ApiProblem(status, message, kind="course-rule", errors=errors)


def _clash(error: IntegrityError) -> ApiProblem:
    """A concurrent request changed the same records first; nothing of this one is kept."""
    db.session.rollback()
    return ApiProblem(409, "These records changed while the request was handled. Send it again")


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError as error:
        raise _clash(error) from error


class _Fields:
    """Reads typed fields from one JSON object, collecting messages per (dotted) field."""

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
            self.fail(key[:60], "Unknown field")

    def _missing(self, key: str, required: str) -> bool:
        if self.data.get(key) is None:
            if required:
                self.fail(key, required)
            return True
        return False

    def text(self, key: str, *, max_length: int, required: str = "") -> str:
        """A string, trimmed; empty when absent."""
        value = self.data.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.fail(key, "Must be a string")
            return ""
        value = value.strip()
        if "\x00" in value:  # PostgreSQL text cannot hold it
            self.fail(key, "Must not contain NUL characters")
            return ""
        if not value and required:
            self.fail(key, required)
        elif len(value) > max_length:
            self.fail(key, f"Must be {max_length} characters or fewer")
            return ""
        return value

    def integer(
        self, key: str, *, minimum: int, maximum: int, required: str = "", what: str = ""
    ) -> int | None:
        if self._missing(key, required):
            return None
        value = integral(self.data[key])
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "Must be a whole number")
            return None
        if not minimum <= value <= maximum:
            self.fail(key, f"{what or 'Must be'} between {minimum} and {maximum}".strip())
            return None
        return value

    def identifier(self, key: str, *, required: str = "") -> int | None:
        if self._missing(key, required):
            return None
        value = integral(self.data[key])
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
            self.fail(key, "Must be the id of a record, a whole number")
            return None
        return value

    def choice(self, key: str, vocabulary: type[E], *, required: str = "") -> E | None:
        if self._missing(key, required):
            return None
        value = self.data[key]
        allowed = _values(vocabulary)
        if not isinstance(value, str) or value not in allowed:
            self.fail(key, "Choose one of: " + ", ".join(allowed))
            return None
        return vocabulary(value)

    def day(self, key: str, *, required: str = "") -> date | None:
        """A date written `YYYY-MM-DD`."""
        if self._missing(key, required):
            return None
        value = self.data[key]
        if not isinstance(value, str) or not _ISO_DATE.match(value):
            self.fail(key, "Enter a date as YYYY-MM-DD, for example 2026-03-03")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(key, "Enter a real date as YYYY-MM-DD, for example 2026-03-03")
            return None

    def clock(self, key: str, *, required: str = "") -> time | None:
        """A local time written `HH:MM`."""
        if self._missing(key, required):
            return None
        value = self.data[key]
        match = _CLOCK.match(value) if isinstance(value, str) else None
        if match is None:
            self.fail(key, "Enter a time as HH:MM on the 24-hour clock, for example 10:00")
            return None
        return time(int(match.group(1)), int(match.group(2)))

    def choices(self, key: str, vocabulary: type[E]) -> list[E]:
        """A list of enum values, duplicates dropped; empty when absent."""
        value = self.data.get(key)
        if value is None:
            return []
        allowed = _values(vocabulary)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, "Must be a list of: " + ", ".join(allowed))
            return []
        unknown = [item for item in value if item not in allowed]
        if unknown:
            self.fail(key, f"Unknown value {unknown[0][:40]!r}. Choose from: " + ", ".join(allowed))
            return []
        return [vocabulary(item) for item in dict.fromkeys(value)]

    def identifiers(self, key: str) -> list[int]:
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            value = [integral(item) for item in value]
        if (
            not isinstance(value, list)
            or len(value) > 100
            or not all(
                isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= MAX_ID
                for item in value
            )
        ):
            self.fail(key, "Must be a list of record ids, whole numbers")
            return []
        return list(dict.fromkeys(value))

    def nested(self, key: str, *, required: str = "") -> _Fields | None:
        if self._missing(key, required):
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            self.fail(key, "Must be an object")
            return None
        return _Fields(value, self.errors, f"{self.prefix}{key}.")


# Loaders ----------------------------------------------------------------------------------


def _possible_id(record_id: int) -> None:
    """Ids beyond the database's integer range cannot exist, and SQLite cannot even compare
    them: answer 404 before the query."""
    if record_id > MAX_ID:
        abort(404)


def _course_or_404(course_id: int) -> Course:
    _possible_id(course_id)
    return get_course_or_404(course_id, current_user)


def _register_session_or_404(session_id: int) -> CourseSession:
    _possible_id(session_id)
    return get_register_session_or_404(session_id, current_user)


# JSON shapes ----------------------------------------------------------------------------


def venue_json(venue: Venue) -> dict[str, Any]:
    return {
        "id": venue.id,
        "name": venue.name,
        "address": venue.address,
        "postcode": venue.postcode,
        "accessibility": venue.accessibility,
    }


def schedule_json(course: Course, last_session: date | None) -> dict[str, Any]:
    return {
        "start_date": course.start_date.isoformat(),
        "start_time": _clock(course.start_time),
        "end_time": _end_clock(course.start_time, course.duration_minutes),
        "duration_minutes": course.duration_minutes,
        "frequency": course.frequency.value,
        "weekday": WEEKDAYS[course.start_date.weekday()],
        "sessions": course.session_count,
        "taster_sessions": course.taster_count,
        "end_date": _iso(last_session),
    }


def course_json(course: Course, *, places: int, last_session: date | None) -> dict[str, Any]:
    return {
        "id": course.id,
        "title": course.title,
        "description": course.description,
        "art_form": course.art_form.value,
        "provider_id": course.provider_id,
        "provider_name": course.provider.name,
        "contract_id": course.contract_id,
        "venue": venue_json(course.venue),
        "capacity": course.capacity,
        "places_left": places,
        **(
            {"cost_per_session_pence": course.cost_per_session_pence}
            if sees_contract_cost(current_user)
            else {}
        ),
        "participant_fee_pence": course.participant_fee_pence,
        "pathways": list(course.pathways or []),
        "min_age": course.min_age,
        "max_age": course.max_age,
        "schedule": schedule_json(course, last_session),
    }


def session_json(session: CourseSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "course_id": session.course_id,
        "sequence": session.sequence,
        "date": session.date.isoformat(),
        "start_time": _clock(session.start_time),
        "end_time": _end_clock(session.start_time, session.duration_minutes),
        "duration_minutes": session.duration_minutes,
        "is_taster": session.is_taster,
        "status": session.status.value,
        "moved_from": _iso(session.moved_from),
        "cancelled_reason": session.cancelled_reason,
        "register_saved_at": _iso(session.register_saved_at),
    }


def _attendance_json(enrolment_id: int) -> list[dict[str, Any]]:
    rows = db.session.execute(
        select(Attendance, CourseSession.date)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .where(Attendance.enrolment_id == enrolment_id)
        .order_by(CourseSession.date, CourseSession.id)
    ).all()
    return [
        {
            "session_id": mark.session_id,
            "date": day.isoformat(),
            "status": mark.status.value,
            "mood_before": mark.mood_before,
            "mood_after": mark.mood_after,
            "note": mark.note,
        }
        for mark, day in rows
    ]


def person_json(enrolment: Enrolment) -> dict[str, Any]:
    """What a register needs about a person: never their NHS number or why they were referred."""
    patient = enrolment.referral.patient
    return {
        "name": patient.full_name,
        "access_needs": patient.access_needs,
        "phone": patient.phone,
    }


def enrolment_json(enrolment: Enrolment, viewer: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": enrolment.id,
        "course_id": enrolment.course_id,
        "course_title": enrolment.course.title,
        "status": enrolment.status.value,
    }
    if viewer.role == Role.ARTIST:
        body["person"] = person_json(enrolment)
    else:
        body.update(
            waitlist_position=waitlist_position(enrolment),
            referral_id=enrolment.referral_id,
            created_at=_iso(enrolment.created_at),
            waitlisted_at=_iso(enrolment.waitlisted_at),
            enrolled_at=_iso(enrolment.enrolled_at),
            offer_expires_on=_iso(enrolment.offer_expires_on),
            completed_at=_iso(enrolment.completed_at),
            withdrawn_at=_iso(enrolment.withdrawn_at),
            withdrawn_reason=enrolment.withdrawn_reason,
        )
    body["attendance"] = _attendance_json(enrolment.id)
    return body


def contract_json(contract: Contract) -> dict[str, Any]:
    return {
        "id": contract.id,
        "name": contract.name,
        "commissioner_id": contract.commissioner_id,
        "start_date": contract.start_date.isoformat(),
        "end_date": contract.end_date.isoformat(),
        "value_pence": contract.value_pence,
        "targets": dict(contract.targets or {}),
    }


def wellbeing_json(assessment: WellbeingAssessment) -> dict[str, Any]:
    return {
        "id": assessment.id,
        "enrolment_id": assessment.enrolment_id,
        "instrument": assessment.instrument.value,
        "timepoint": assessment.timepoint.value,
        "items": list(assessment.items),
        "raw_score": assessment.raw_score,
        "metric_score": float(Decimal(assessment.metric_score)),
        "recorded_on": assessment.recorded_on.isoformat(),
    }


# The directory --------------------------------------------------------------------------


def _places_taken() -> Any:
    return (
        select(func.count(Enrolment.id))
        .where(Enrolment.course_id == Course.id, Enrolment.status.in_(HOLDS_PLACE))
        .correlate(Course)
        .scalar_subquery()
    )


def _last_session() -> Any:
    return (
        select(func.max(CourseSession.date))
        .where(
            CourseSession.course_id == Course.id, CourseSession.status != SessionStatus.CANCELLED
        )
        .correlate(Course)
        .scalar_subquery()
    )


def _weekday_clause(weekday: int) -> Any:
    """Courses meet on their start date's weekday (Monday 0)."""
    sunday_first = (weekday + 1) % 7  # SQL's day-of-week numbering starts on Sunday
    if db.session.get_bind().dialect.name == "sqlite":
        return func.strftime("%w", Course.start_date) == str(sunday_first)
    return func.extract("dow", Course.start_date) == sunday_first


def _directory_filters() -> list[Any]:
    """WHERE clauses from the query string; a bad value is a 422 naming the parameter."""
    args = request.args
    errors: dict[str, list[str]] = {}
    clauses: list[Any] = []
    art_form = args.get("art_form")
    if art_form:
        if art_form in ArtForm._value2member_map_:
            clauses.append(Course.art_form == ArtForm(art_form))
        else:
            errors["art_form"] = ["Choose from: " + ", ".join(_values(ArtForm))]
    pathway = args.get("pathway")
    if pathway:
        if pathway in Pathway._value2member_map_:
            # Pathways are a JSON list of plain codes; matching the quoted code works on every
            # database the service runs on.
            clauses.append(cast(Course.pathways, String).contains(f'"{pathway}"', autoescape=True))
        else:
            errors["pathway"] = ["Choose from: " + ", ".join(_values(Pathway))]
    weekday = args.get("weekday")
    if weekday:
        if weekday.lower() in WEEKDAYS:
            clauses.append(_weekday_clause(WEEKDAYS.index(weekday.lower())))
        else:
            errors["weekday"] = ["Choose from: " + ", ".join(WEEKDAYS)]
    provider = args.get("provider_id")
    if provider:
        if (
            provider.isascii()
            and provider.isdigit()
            and len(provider) <= 10
            and 1 <= int(provider) <= MAX_ID
        ):
            clauses.append(Course.provider_id == int(provider))
        else:
            errors["provider_id"] = ["Must be the id of a provider, a whole number"]
    has_places = args.get("has_places")
    if has_places:
        if has_places == "true":
            clauses.append(_places_taken() < Course.capacity)
        elif has_places == "false":
            clauses.append(_places_taken() >= Course.capacity)
        else:
            errors["has_places"] = ["Must be true or false"]
    if errors:
        raise query_problem(errors)
    return clauses


def _directory_page(user: Any, serialise: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """A page of the courses the user may see, with places left and end dates in one query."""
    page, per_page = page_args()
    clauses = [course_scope(user), *_directory_filters()]
    total = db.session.scalar(select(func.count(Course.id)).where(*clauses)) or 0
    rows = db.session.execute(
        select(Course, _places_taken().label("taken"), _last_session().label("last"))
        .where(*clauses)
        .options(joinedload(Course.venue), joinedload(Course.provider))
        .order_by(Course.start_date, Course.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return {
        "items": [
            serialise(course, places=max(0, course.capacity - taken), last_session=last)
            for course, taken, last in rows
        ],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


@bp.get("/courses")
@allow(STAFF)
@operation(
    "The course directory",
    roles="all staff (artists see their own provider's courses)",
    tags=["courses"],
    parameters=[*PAGE_PARAMETERS, *_COURSE_FILTERS],
    responses={
        200: json_response("A page of courses, earliest start first", page_of("Course")),
        422: _INVALID,
    },
)
def list_courses() -> ResponseReturnValue:
    return jsonify(_directory_page(current_user, course_json))


@bp.get("/courses/<int:course_id>")
@allow(STAFF)
@operation(
    "A course in the directory",
    roles="all staff (artists: their own provider's courses)",
    tags=["courses"],
    responses={200: json_response("The course", ref("Course")), 404: _NOT_FOUND},
)
def get_course(course_id: int) -> ResponseReturnValue:
    course = _course_or_404(course_id)
    return jsonify(
        course_json(course, places=places_left(course), last_session=course_end(course.id))
    )


def _venue(fields: _Fields) -> Venue | VenueFields | None:
    """An existing venue (`venue_id`) or the details of a new one (`venue`)."""
    given_object = fields.data.get("venue") is not None
    given_id = fields.data.get("venue_id") is not None
    if given_object and given_id:
        fields.fail("venue_id", "Give venue or venue_id, not both")
        return None
    if given_id:
        venue_id = fields.identifier("venue_id")
        if venue_id is None:
            return None
        venue = db.session.get(Venue, venue_id)
        if venue is None:
            fields.fail("venue_id", "No venue has this id")
        return venue
    place = fields.nested("venue", required="Give the venue, or the venue_id of a known one")
    if place is None:
        return None
    before = len(fields.errors)
    place.refuse_unknown(VENUE_FIELDS)
    name = place.text("name", max_length=TITLE_MAX, required="Enter the venue's name")
    address = place.text("address", max_length=ADDRESS_MAX, required="Enter the venue's address")
    postcode = place.text("postcode", max_length=12, required="Enter the venue's postcode")
    if postcode:
        try:
            postcode = clean_postcode(postcode)
        except InvalidValue as error:
            place.fail("postcode", str(error))
    accessibility = place.text("accessibility", max_length=TEXT_MAX)
    if len(fields.errors) > before:
        return None
    return VenueFields(name=name, address=address, postcode=postcode, accessibility=accessibility)


def _schedule(fields: _Fields) -> Schedule | None:
    plan = fields.nested("schedule", required="Give the schedule")
    if plan is None:
        return None
    before = len(fields.errors)
    plan.refuse_unknown(SCHEDULE_FIELDS)
    start_date = plan.day("start_date", required="Enter the date of the first session")
    start_time = plan.clock("start_time", required="Enter the time sessions start")
    duration = plan.integer(
        "duration_minutes", minimum=1, maximum=24 * 60, required="Enter the session length"
    )
    frequency = plan.choice("frequency", Frequency, required="Choose weekly or fortnightly")
    sessions = plan.integer(
        "sessions", minimum=0, maximum=10_000, required="Enter the number of sessions"
    )
    tasters = plan.integer("taster_sessions", minimum=0, maximum=10_000)
    if len(fields.errors) > before:
        return None
    assert start_date is not None and start_time is not None and frequency is not None
    assert duration is not None and sessions is not None
    schedule = Schedule(
        start_date=start_date,
        start_time=start_time,
        duration_minutes=duration,
        frequency=frequency,
        sessions=sessions,
        taster_sessions=tasters or 0,
    )
    for name, messages in schedule_errors(schedule).items():
        for message in messages:
            plan.fail(name, message)
    return None if len(fields.errors) > before else schedule


def _course_request(payload: dict[str, Any]) -> tuple[dict[str, Any], Venue | VenueFields]:
    """The body of `POST /courses`, checked: the course's fields (all but the venue) and the
    venue, known or new. Raises the 422 naming every bad field."""
    errors: dict[str, list[str]] = {}
    fields = _Fields(payload, errors)
    fields.refuse_unknown(COURSE_FIELDS)
    title = fields.text("title", max_length=TITLE_MAX, required="Enter the course title")
    description = fields.text("description", max_length=TEXT_MAX)
    art_form = fields.choice("art_form", ArtForm, required="Choose the art form")
    provider_id = fields.identifier("provider_id", required="Choose the arts provider")
    provider = db.session.get(Organisation, provider_id) if provider_id else None
    if provider_id and provider is None:
        fields.fail("provider_id", "No organisation has this id")
    contract_id = fields.identifier("contract_id", required="Choose the contract")
    contract = db.session.get(Contract, contract_id) if contract_id else None
    if contract_id and contract is None:
        fields.fail("contract_id", "No contract has this id")
    venue = _venue(fields)
    capacity = fields.integer(
        "capacity", minimum=1, maximum=CAPACITY_MAX, required="Enter the capacity"
    )
    cost = fields.integer("cost_per_session_pence", minimum=0, maximum=COST_MAX_PENCE)
    fee = fields.integer("participant_fee_pence", minimum=0, maximum=COST_MAX_PENCE)
    pathways = fields.choices("pathways", Pathway)
    min_age = fields.integer("min_age", minimum=0, maximum=AGE_MAX)
    max_age = fields.integer("max_age", minimum=0, maximum=AGE_MAX)
    artist_ids = fields.identifiers("lead_artist_ids")
    artists = (
        list(db.session.scalars(select(User).where(User.id.in_(artist_ids)))) if artist_ids else []
    )
    if len(artists) < len(artist_ids):
        fields.fail("lead_artist_ids", "Each must be the id of an artist at the provider")
    schedule = _schedule(fields)
    if errors:
        raise validation_problem(errors)
    assert venue is not None
    course = {
        "title": title,
        "description": description,
        "art_form": art_form,
        "provider": provider,
        "contract": contract,
        "capacity": capacity,
        "schedule": schedule,
        "pathways": pathways,
        "min_age": min_age,
        "max_age": max_age,
        "cost_per_session_pence": cost or 0,
        "participant_fee_pence": fee or None,
        "lead_artists": artists,
    }
    return course, venue


@bp.post("/courses")
@allow(Role.ADMIN)
@operation(
    "Create a course and its sessions",
    roles="admin",
    tags=["courses"],
    request_body=ref("CourseInput"),
    responses={
        201: json_response("The course with its generated sessions", ref("CourseWithSessions")),
        422: _INVALID,
    },
)
def create_course_view() -> ResponseReturnValue:
    details, venue = _course_request(json_object())
    try:
        if isinstance(venue, VenueFields):
            venue = create_venue(current_user, venue)
        course = create_course(current_user, CourseFields(venue=venue, **details))
    except CourseRuleBroken as broken:
        raise _rule_problem(broken, 422) from broken
    except InvalidSchedule as invalid:
        db.session.rollback()
        raise validation_problem(
            {f"schedule.{name}": messages for name, messages in invalid.errors.items()}
        ) from invalid
    except IntegrityError as error:
        raise _clash(error) from error
    body = course_json(course, places=course.capacity, last_session=course_end(course.id))
    body["sessions"] = [session_json(session) for session in course.sessions]
    _commit()
    return _created(body, f"/api/v1/courses/{course.id}")


@bp.get("/courses/<int:course_id>/sessions")
@allow(STAFF)
@operation(
    "A course's sessions",
    roles="all staff who can see the course",
    tags=["courses"],
    parameters=PAGE_PARAMETERS,
    responses={
        200: json_response("A page of sessions in date order", page_of("CourseSession")),
        404: _NOT_FOUND,
        422: _INVALID,
    },
)
def list_course_sessions(course_id: int) -> ResponseReturnValue:
    course = _course_or_404(course_id)
    query = (
        select(CourseSession)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.date, CourseSession.start_time, CourseSession.id)
    )
    return jsonify(paginate(query, session_json))


# Enrolments -----------------------------------------------------------------------------


def _enrolment_or_404(enrolment_id: int) -> Enrolment:
    """The enrolment in the caller's scope. Artists see only people on a register: enrolled,
    completed, or already marked at a session; never the waiting list."""
    _possible_id(enrolment_id)
    enrolment = get_enrolment_or_404(enrolment_id, current_user)
    if current_user.role == Role.ARTIST and enrolment.status not in (
        EnrolmentStatus.ENROLLED,
        EnrolmentStatus.COMPLETED,
    ):
        marked = db.session.scalar(select(exists().where(Attendance.enrolment_id == enrolment.id)))
        if not marked:
            abort(404)
    return enrolment


@bp.post("/courses/<int:course_id>/enrolments")
@allow(*ENROLLING)
@operation(
    "Enrol an assessed referral, or put them on the waiting list",
    roles="link_worker, admin",
    tags=["enrolments"],
    request_body=ref("EnrolmentInput"),
    responses={
        201: json_response(
            "The enrolment: `enrolled`, or `waitlisted` with its `waitlist_position`",
            ref("Enrolment"),
        ),
        404: _NOT_FOUND,
        409: _conflict(
            "The course rules refuse it (not assessed, already on a course, outside the age "
            "range, course finished, too late to complete without `late_start_confirmed`); "
            "`errors` names the field"
        ),
        422: _INVALID,
    },
)
def create_enrolment(course_id: int) -> ResponseReturnValue:
    course = _course_or_404(course_id)
    errors: dict[str, list[str]] = {}
    fields = _Fields(json_object(), errors)
    fields.refuse_unknown(frozenset({"referral_id", "late_start_confirmed"}))
    referral_id = fields.identifier("referral_id", required="Give the referral to enrol")
    late_start_confirmed = fields.data.get("late_start_confirmed", False)
    if not isinstance(late_start_confirmed, bool):
        fields.fail("late_start_confirmed", "Must be true or false")
    referral = None
    if referral_id is not None:
        # Not locked here: enrol() locks the course and then the referral, in that order.
        referral = db.session.scalar(
            scoped_referrals(current_user).where(Referral.id == referral_id)
        )
        if referral is None:
            fields.fail("referral_id", "No referral with this id")
    if errors:
        raise validation_problem(errors)
    assert referral is not None
    try:
        enrolment = enrol(
            current_user,
            referral,
            course,
            today=today(),
            late_start_confirmed=late_start_confirmed is True,
        )
    except CourseRuleBroken as broken:
        raise _rule_problem(broken) from broken
    except TransitionRefused as refused:
        db.session.rollback()
        raise ApiProblem(
            409, str(refused), kind="course-rule", errors={"referral_id": [str(refused)]}
        ) from refused
    except IntegrityError as error:
        db.session.rollback()
        raise ApiProblem(
            409, "This person was enrolled by someone else at the same time", kind="course-rule"
        ) from error
    body = enrolment_json(enrolment, current_user)
    _commit()
    return _created(body, f"/api/v1/enrolments/{enrolment.id}")


@bp.get("/enrolments/<int:enrolment_id>")
@allow(*ENROLMENT_READERS)
@operation(
    "An enrolment, its status and attendance",
    roles=(
        "admin, link_worker, referrer (their practice's referrals), artist (people on their "
        "provider's registers, shown with only what a register needs)"
    ),
    tags=["enrolments"],
    responses={200: json_response("The enrolment", ref("Enrolment")), 404: _NOT_FOUND},
)
def get_enrolment(enrolment_id: int) -> ResponseReturnValue:
    enrolment = _enrolment_or_404(enrolment_id)
    body = enrolment_json(enrolment, current_user)
    enrolment_viewed(current_user, enrolment)
    return jsonify(body)


@bp.post("/enrolments/<int:enrolment_id>/withdraw")
@allow(*ENROLLING)
@operation(
    "Take someone off a course or its waiting list",
    roles="link_worker, admin",
    tags=["enrolments"],
    request_body=ref("WithdrawInput"),
    responses={
        200: json_response(
            "The enrolment, withdrawn; `offered_to` names the waiting enrolment offered the "
            "freed place",
            ref("WithdrawnEnrolment"),
        ),
        404: _NOT_FOUND,
        409: _conflict("Not on the course or its waiting list any more"),
        422: _INVALID,
    },
)
def withdraw_enrolment(enrolment_id: int) -> ResponseReturnValue:
    enrolment = _enrolment_or_404(enrolment_id)
    errors: dict[str, list[str]] = {}
    fields = _Fields(json_object(), errors)
    fields.refuse_unknown(frozenset({"reason"}))
    reason = fields.text("reason", max_length=TEXT_MAX, required="Give a reason")
    if errors:
        raise validation_problem(errors)
    try:
        offered = withdraw(current_user, enrolment, reason, today=today())
    except CourseRuleBroken as broken:
        raise _rule_problem(broken, 422 if broken.field == "reason" else 409) from broken
    except TransitionRefused as refused:
        db.session.rollback()
        raise ApiProblem(409, str(refused), kind="course-rule") from refused
    body = enrolment_json(enrolment, current_user)
    body["offered_to"] = offered.id if offered is not None else None
    _commit()
    return jsonify(body)


# Registers and sessions -----------------------------------------------------------------


@bp.get("/sessions/<int:session_id>/register")
@allow(*REGISTER_TAKERS)
@operation(
    "A session's register: who is expected, and what has been recorded",
    roles="artist (their provider's courses), admin",
    tags=["registers"],
    responses={200: json_response("The register", ref("Register")), 404: _NOT_FOUND},
)
def get_register(session_id: int) -> ResponseReturnValue:
    session = _register_session_or_404(session_id)
    body = _register_body(session)
    people_viewed(
        current_user, "register.viewed", register_enrolments(session), session_id=session.id
    )
    return jsonify(body)


def _register_body(session: CourseSession) -> dict[str, Any]:
    people = register_enrolments(session)
    referral_ids = [enrolment.referral_id for enrolment in people]
    if referral_ids:  # one query for everyone's details, not one per person
        db.session.scalars(
            select(Referral)
            .where(Referral.id.in_(referral_ids))
            .options(joinedload(Referral.patient))
        ).all()
    marks = {
        mark.enrolment_id: mark
        for mark in db.session.scalars(
            select(Attendance).where(Attendance.session_id == session.id)
        )
    }
    entries = []
    for enrolment in people:
        mark = marks.get(enrolment.id)
        entries.append(
            {
                "enrolment_id": enrolment.id,
                **person_json(enrolment),
                "mark": None
                if mark is None
                else {
                    "status": mark.status.value,
                    "mood_before": mark.mood_before,
                    "mood_after": mark.mood_after,
                    "note": mark.note,
                },
            }
        )
    return {
        "session": session_json(session),
        "course_title": session.course.title,
        "editable": can_edit_register(current_user, session, today()),
        "entries": entries,
    }


def register_entries_from_json(payload: dict[str, Any]) -> list[RegisterEntry]:
    errors: dict[str, list[str]] = {}
    fields = _Fields(payload, errors)
    fields.refuse_unknown(frozenset({"entries"}))
    raw = payload.get("entries")
    if raw is None:
        fields.fail("entries", "Give the register's entries")
    elif not isinstance(raw, list):
        fields.fail("entries", "Must be a list of entries")
    elif len(raw) > REGISTER_ENTRIES_MAX:
        fields.fail("entries", f"Must be {REGISTER_ENTRIES_MAX} entries or fewer")
    if errors or not isinstance(raw, list):
        raise validation_problem(errors)
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            fields.fail(f"entries.{index}", "Must be an object")
            continue
        entry = _Fields(item, errors, f"entries.{index}.")
        before = len(errors)
        entry.refuse_unknown(ENTRY_FIELDS)
        enrolment_id = entry.identifier("enrolment_id", required="Give the enrolment id")
        status = entry.choice(
            "status", AttendanceStatus, required="Choose attended, apologies or no_show"
        )
        moods = [
            entry.integer(
                name, minimum=MOOD_MIN, maximum=MOOD_MAX, what="Mood must be a whole number"
            )
            for name in ("mood_before", "mood_after")
        ]
        note = entry.text("note", max_length=NOTE_MAX)
        if len(errors) == before:
            assert enrolment_id is not None and status is not None
            entries.append(
                RegisterEntry(
                    enrolment_id=enrolment_id,
                    status=status,
                    mood_before=moods[0],
                    mood_after=moods[1],
                    note=note,
                )
            )
    if errors:
        raise validation_problem(errors)
    return entries


@bp.put("/sessions/<int:session_id>/register")
@allow(*REGISTER_TAKERS)
@operation(
    "Save a session's register; the session becomes delivered",
    roles=(
        "artist of the course's provider (on the day and for 7 days after), admin (any date "
        "from the day of the session)"
    ),
    tags=["registers"],
    request_body=ref("RegisterInput"),
    responses={
        200: json_response("The register as saved", ref("Register")),
        404: _NOT_FOUND,
        409: _conflict(
            "The session is cancelled, has not happened yet, or is past the artist's edit window"
        ),
        422: {
            **PROBLEM_RESPONSE,
            "description": "Invalid entries, named like `entries.2.mood_after`; nothing is saved",
        },
    },
)
def save_register_view(session_id: int) -> ResponseReturnValue:
    session = _register_session_or_404(session_id)
    entries = register_entries_from_json(json_object())
    try:
        save_register(current_user, session, entries, today=today())
    except RegisterRefused as refused:
        db.session.rollback()
        if refused.errors:
            raise ApiProblem(
                422, str(refused), kind="validation", errors=refused.errors
            ) from refused
        raise ApiProblem(409, str(refused), kind="register-refused") from refused
    except (CourseRuleBroken, TransitionRefused) as refused:
        db.session.rollback()
        raise ApiProblem(409, str(refused), kind="register-refused") from refused
    except IntegrityError as error:
        raise _clash(error) from error
    body = _register_body(session)
    _commit()
    return jsonify(body)


@bp.patch("/sessions/<int:session_id>")
@allow(*REGISTER_TAKERS)
@operation(
    "Cancel a session",
    roles="artist of the course's provider, admin",
    tags=["registers"],
    request_body=ref("SessionPatch"),
    responses={
        200: json_response("The session", ref("CourseSession")),
        404: _NOT_FOUND,
        409: _conflict("The session has a register and cannot be cancelled"),
        422: _INVALID,
    },
)
def update_session(session_id: int) -> ResponseReturnValue:
    session = _register_session_or_404(session_id)
    errors: dict[str, list[str]] = {}
    fields = _Fields(json_object(), errors)
    fields.refuse_unknown(frozenset({"status", "reason"}))
    status = fields.data.get("status")
    if status is None:
        fields.fail("status", "Give the new status: cancelled")
    elif status != SessionStatus.CANCELLED.value:
        fields.fail("status", "Only cancelled can be set; saving the register delivers it")
    reason = fields.text("reason", max_length=TEXT_MAX, required="Give a reason for cancelling")
    if errors:
        raise validation_problem(errors)
    try:
        cancel_session(current_user, session, reason)
    except CourseRuleBroken as broken:
        raise _rule_problem(broken, 422 if broken.field == "reason" else 409) from broken
    body = session_json(session)
    _commit()
    return jsonify(body)


# Wellbeing ------------------------------------------------------------------------------


@bp.post("/enrolments/<int:enrolment_id>/wellbeing")
@allow(*WELLBEING_RECORDERS)
@operation(
    "Record a wellbeing questionnaire",
    roles="artist (people on their provider's registers), link_worker, admin",
    tags=["wellbeing"],
    request_body=ref("WellbeingInput"),
    responses={
        201: json_response("The scored questionnaire", ref("WellbeingAssessment")),
        404: _NOT_FOUND,
        422: _INVALID,
    },
)
def create_wellbeing(enrolment_id: int) -> ResponseReturnValue:
    enrolment = _enrolment_or_404(enrolment_id)
    errors: dict[str, list[str]] = {}
    fields = _Fields(json_object(), errors)
    fields.refuse_unknown(frozenset({"instrument", "timepoint", "items", "recorded_on"}))
    instrument = fields.choice("instrument", Instrument, required="Choose SWEMWBS or WEMWBS")
    timepoint = fields.choice("timepoint", Timepoint, required="Choose baseline, end or follow_up")
    items = fields.data.get("items")
    if items is None:
        fields.fail("items", "Give the answers, one whole number from 1 to 5 per item")
    elif not isinstance(items, list) or len(items) > ITEMS_MAX:
        fields.fail("items", "Must be a list of whole numbers from 1 to 5")
    elif instrument is not None:
        for name, messages in validate_items(instrument, items).items():
            for message in messages:
                fields.fail(name, message)
    recorded_on = fields.day("recorded_on") or today()
    if not fields.failed("recorded_on") and (
        refused := refusal(check_recorded, recorded_on, today())
    ):
        fields.fail(refused.field, str(refused))
    if errors:
        raise validation_problem(errors)
    assert instrument is not None and timepoint is not None and isinstance(items, list)
    try:
        assessment = record_wellbeing(
            current_user,
            enrolment,
            instrument,
            timepoint,
            items,
            recorded_on=recorded_on,
            today=today(),
        )
    except CourseRuleBroken as broken:
        raise _rule_problem(broken, 422) from broken
    except InvalidScores as invalid:
        db.session.rollback()
        raise validation_problem(invalid.errors) from invalid
    body = wellbeing_json(assessment)
    _commit()
    return _created(body)


# Contracts ------------------------------------------------------------------------------


def _targets(fields: _Fields) -> dict[str, dict[str, dict[str, float]]]:
    """The contract's targets, checked by the one targets rule (the admin form's too)."""
    raw = fields.data.get("targets")
    if raw is not None and not isinstance(raw, dict):
        fields.fail("targets", "Must be an object of KPI code to span to levels")
        return {}
    try:
        return check_targets(raw)
    except InvalidTargets as invalid:
        for key, messages in invalid.errors.items():
            for message in messages:
                fields.fail(f"targets.{key}" if key else "targets", message)
        return {}


@bp.post("/contracts")
@allow(Role.ADMIN)
@operation(
    "Create a contract with its monthly KPI targets",
    roles="admin",
    tags=["contracts"],
    request_body=ref("ContractInput"),
    responses={201: json_response("The contract", ref("Contract")), 422: _INVALID},
)
def create_contract() -> ResponseReturnValue:
    errors: dict[str, list[str]] = {}
    fields = _Fields(json_object(), errors)
    fields.refuse_unknown(CONTRACT_FIELDS)
    name = fields.text("name", max_length=TITLE_MAX, required="Enter the contract's name")
    if name and db.session.scalar(
        select(Contract.id).where(func.lower(Contract.name) == name.lower())
    ):
        fields.fail("name", "A contract with this name already exists")
    commissioner_id = fields.identifier(
        "commissioner_id", required="Choose the commissioning organisation"
    )
    commissioner = db.session.get(Organisation, commissioner_id) if commissioner_id else None
    if commissioner_id and commissioner is None:
        fields.fail("commissioner_id", "No organisation has this id")
    start_date = fields.day("start_date", required="Enter the start date")
    end_date = fields.day("end_date", required="Enter the end date")
    if (
        start_date
        and end_date
        and (refused := refusal(check_contract, start_date, end_date, today()))
    ):
        fields.fail(refused.field, str(refused))
    value = fields.integer("value_pence", minimum=0, maximum=CONTRACT_VALUE_MAX_PENCE)
    targets = _targets(fields)
    if errors:
        raise validation_problem(errors)
    assert commissioner is not None and start_date is not None and end_date is not None
    try:
        contract = save_contract(
            current_user,
            ContractFields(
                name=name,
                commissioner=commissioner,
                start_date=start_date,
                end_date=end_date,
                targets=targets,
                value_pence=value,
            ),
            today=today(),
        )
    except CourseRuleBroken as broken:
        raise _rule_problem(broken, 422) from broken
    except IntegrityError as error:
        raise _clash(error) from error
    body = contract_json(contract)
    _commit()
    return _created(body)


@bp.get("/contracts")
@allow(*CONTRACT_READERS)
@operation(
    "List contracts",
    roles="admin (all), commissioner (their organisation's)",
    tags=["contracts"],
    parameters=PAGE_PARAMETERS,
    responses={200: json_response("A page of contracts", page_of("Contract")), 422: _INVALID},
)
def list_contracts() -> ResponseReturnValue:
    query = select(Contract).order_by(Contract.start_date.desc(), Contract.id)
    if current_user.role != Role.ADMIN:
        query = query.where(Contract.commissioner_id == current_user.organisation_id)
    return jsonify(paginate(query, contract_json))


# Open Referral UK -----------------------------------------------------------------------


@bp.get("/openreferral/services")
@public
@operation(
    "Moved: the open Open Referral UK 3.0 feed",
    roles="anyone; no token needed",
    tags=["courses"],
    responses={308: {"description": "The same services at /openreferral/services (ORUK 3.0)"}},
)
def openreferral_services() -> ResponseReturnValue:
    """The feed moved out of the token-only API to the open ORUK 3.0 paths; one shape only."""
    query = request.query_string.decode("latin-1")
    target = url_for("openreferral.services") + (f"?{query}" if query else "")
    return redirect(target, code=308)
