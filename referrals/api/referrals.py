"""Referrals over the API: create (idempotently), list, read, and move along the lifecycle."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from referrals.api import bp
from referrals.api.body import json_body
from referrals.api.openapi import (
    PAGE_PARAMETERS,
    PROBLEM_RESPONSE,
    json_response,
    operation,
    page_of,
    ref,
    register_schema,
)
from referrals.api.pagination import paginate
from referrals.api.problems import ApiProblem, validation_problem
from referrals.audit import record
from referrals.auth.models import Role
from referrals.courses.services import CourseRuleBroken, close_referral, lock_courses_of
from referrals.extensions import db
from referrals.intake.forms import NAME_MAX, TEXT_MAX
from referrals.intake.identity import PersonAsSent, person_seen_by
from referrals.intake.lifecycle import Status, TransitionRefused
from referrals.intake.models import (
    IdempotentRequest,
    Patient,
    Referral,
    ReferralTransition,
)
from referrals.intake.payloads import (
    PATIENT_FIELDS,
    PREFERRED_CONTACT_CHOICES,
    InvalidPayload,
    referral_details,
    transition_request,
)
from referrals.intake.scope import get_referral_or_404, scoped_referrals
from referrals.intake.services import (
    OPEN_ELSEWHERE,
    DuplicateOpenReferral,
    OpenReferral,
    create_referral,
    duplicate_refused,
    open_referral_check,
    referral_viewed,
    referrals_listed,
)
from referrals.intake.validation import InvalidValue, clean_nhs_number
from referrals.security import allow
from referrals.vocab import ArtForm, ContactMethod, Ethnicity, Pathway, ReferrerType, Sex

REFERRING = (Role.REFERRER, Role.LINK_WORKER, Role.ADMIN)
TRIAGING = (Role.LINK_WORKER, Role.ADMIN)
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX = 200


def _values(vocabulary: Any) -> list[str]:
    return [member.value for member in vocabulary]


_DATE = {"type": "string", "format": "date"}
_NULLABLE_DATE = {"type": ["string", "null"], "format": "date"}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
_STATUS = {"type": "string", "enum": _values(Status)}

register_schema(
    "Patient",
    {
        "type": "object",
        "description": (
            "The person referred. Identifiers and the date of birth are null once the record "
            "is pseudonymised."
        ),
        "required": sorted(PATIENT_FIELDS | {"id", "gp_practice_id"}),
        "properties": {
            "id": {"type": "integer"},
            "nhs_number": {"type": ["string", "null"], "pattern": "^[0-9]{10}$"},
            "given_name": {"type": "string"},
            "family_name": {"type": "string"},
            "date_of_birth": _NULLABLE_DATE,
            "sex": {"type": "string", "enum": _values(Sex)},
            "ethnicity": {"type": "string", "enum": _values(Ethnicity)},
            "postcode": {"type": ["string", "null"], "examples": ["GL1 2AB"]},
            "phone": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"], "format": "email"},
            "preferred_contact": {"type": "string", "enum": _values(ContactMethod)},
            "communication_needs": {"type": "string"},
            "access_needs": {"type": "string"},
            "gp_practice_id": {"type": "integer"},
        },
    },
)
register_schema(
    "Transition",
    {
        "type": "object",
        "description": "One step of a referral's timeline, oldest first.",
        "required": ["from", "to", "at", "effective_on", "actor", "reason", "note"],
        "properties": {
            "from": {
                "type": ["string", "null"],
                "enum": [*_values(Status), None],
                "description": "null for the first step, when the referral was received",
            },
            "to": _STATUS,
            "at": {**_TIMESTAMP, "description": "When it was recorded (ISO 8601, UTC offset)"},
            "effective_on": {**_DATE, "description": "The day the change took effect"},
            "actor": {
                "type": ["string", "null"],
                "description": "The name of who made the change; null for the system",
            },
            "reason": {"type": "string"},
            "note": {"type": "string"},
            "snomed_code": {"type": ["string", "null"]},
        },
    },
)
register_schema(
    "Referral",
    {
        "type": "object",
        "required": [
            "id",
            "status",
            "pathway",
            "referrer_type",
            "reason",
            "interests",
            "consent",
            "risk_flag",
            "risk_note",
            "received_on",
            "closed_on",
            "snomed_code",
            "gp_practice_id",
            "patient",
            "timeline",
        ],
        "properties": {
            "id": {"type": "integer"},
            "status": _STATUS,
            "pathway": {"type": "string", "enum": _values(Pathway)},
            "referrer_type": {"type": "string", "enum": _values(ReferrerType)},
            "reason": {"type": "string"},
            "interests": {"type": "array", "items": {"type": "string", "enum": _values(ArtForm)}},
            "consent": {"type": "boolean"},
            "risk_flag": {"type": "boolean"},
            "risk_note": {"type": "string"},
            "received_on": _DATE,
            "status_changed_at": _TIMESTAMP,
            "first_contact_at": _NULLABLE_TIMESTAMP,
            "closed_on": _NULLABLE_DATE,
            "snomed_code": {
                "type": ["string", "null"],
                "description": "The SNOMED CT concept for the GP record, once there is one",
            },
            "new_episode_reason": {"type": "string"},
            "gp_practice_id": {"type": "integer"},
            "referred_by_id": {"type": ["integer", "null"]},
            "assigned_to_id": {"type": ["integer", "null"]},
            "created_at": _TIMESTAMP,
            "patient": ref("Patient"),
            "timeline": {"type": "array", "items": ref("Transition")},
        },
    },
)
_TEXT = {"type": "string", "maxLength": TEXT_MAX}
register_schema(
    "ReferralInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["patient", "referrer_type", "pathway", "reason", "consent"],
        "properties": {
            "patient": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "nhs_number",
                    "given_name",
                    "family_name",
                    "date_of_birth",
                    "sex",
                    "ethnicity",
                    "postcode",
                ],
                "description": "Give a phone number, an email address or both.",
                "properties": {
                    "nhs_number": {
                        "type": "string",
                        "description": "10 digits with a valid check digit; spaces allowed",
                        "examples": ["943 476 5919"],
                    },
                    "given_name": {"type": "string", "maxLength": NAME_MAX},
                    "family_name": {"type": "string", "maxLength": NAME_MAX},
                    "date_of_birth": {
                        **_DATE,
                        "description": "Not in the future, within the last 120 years",
                    },
                    "sex": {"type": "string", "enum": _values(Sex)},
                    "ethnicity": {
                        "type": "string",
                        "enum": _values(Ethnicity),
                        "description": "ONS 2021 high-level group, or not_stated",
                    },
                    "postcode": {
                        "type": "string",
                        "description": "A UK postcode; stored as `GL1 2AB`",
                    },
                    "phone": {"type": ["string", "null"], "description": "A UK number"},
                    "email": {"type": ["string", "null"], "format": "email"},
                    "preferred_contact": {
                        "type": ["string", "null"],
                        "enum": [*_values(PREFERRED_CONTACT_CHOICES), None],
                        "description": "Default: phone when a phone number is given, else email",
                    },
                    "communication_needs": _TEXT,
                    "access_needs": _TEXT,
                },
            },
            "gp_practice_id": {
                "type": ["integer", "null"],
                "description": (
                    "The person's GP practice, an active organisation of kind gp_practice. "
                    "Required for link workers and admins; referrers may leave it out and "
                    "always refer for their own practice."
                ),
            },
            "referrer_type": {"type": "string", "enum": _values(ReferrerType)},
            "pathway": {"type": "string", "enum": _values(Pathway)},
            "reason": _TEXT,
            "interests": {
                "type": "array",
                "items": {"type": "string", "enum": _values(ArtForm)},
                "uniqueItems": True,
            },
            "consent": {"const": True, "description": "The person agrees to be referred"},
            "risk_flag": {"type": "boolean", "default": False},
            "risk_note": {**_TEXT, "description": "Required when risk_flag is true"},
            "received_on": {
                **_DATE,
                "description": (
                    "Default today; earlier dates (from 2000-01-01) load history; never in the "
                    "future"
                ),
            },
            "new_episode_reason": {
                **_TEXT,
                "description": "Why this is a new referral when the person has an open one",
            },
        },
    },
)
register_schema(
    "TransitionInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["to"],
        "properties": {
            "to": {
                **_STATUS,
                "description": (
                    "The new status. enrolled, waitlisted, started and completed are set by "
                    "enrolment, never by hand."
                ),
            },
            "reason": {**_TEXT, "description": "Required to close or reopen a referral"},
            "note": _TEXT,
            "on": {
                **_DATE,
                "description": "When it took effect; default today; not in the future",
            },
        },
    },
)
register_schema(
    "DuplicateReferralProblem",
    {
        "allOf": [
            ref("Problem"),
            {
                "type": "object",
                "properties": {
                    "open_referral_id": {
                        "type": "integer",
                        "description": "Only when the open referral is one the caller may see",
                    }
                },
            },
        ]
    },
)

_IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Any unique string of up to 200 characters. A retry with the same key and body returns "
        "the first answer instead of recording a second referral; the same key with a "
        "different body is refused (422)."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
}
_FILTER_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "status",
        "in": "query",
        "description": "Repeat to match any of several statuses",
        "schema": {"type": "array", "items": _STATUS},
        "style": "form",
        "explode": True,
    },
    {"name": "pathway", "in": "query", "schema": {"type": "string", "enum": _values(Pathway)}},
    {"name": "gp_practice_id", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "nhs_number",
        "in": "query",
        "description": "10 digits; spaces allowed",
        "schema": {"type": "string"},
    },
]
_CREATED_HEADERS = {
    "Location": {"description": "The referral's URL", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request",
        "schema": {"type": "string"},
    },
}


def today() -> date:
    return datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).date()


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def patient_json(patient: Patient | PersonAsSent) -> dict[str, Any]:
    return {
        "id": patient.id,
        "nhs_number": patient.nhs_number,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        # A pseudonymised record's date of birth is a stand-in, never to be taken as real.
        "date_of_birth": None
        if getattr(patient, "anonymised_at", None)
        else _iso(patient.date_of_birth),
        "sex": patient.sex.value,
        "ethnicity": patient.ethnicity.value,
        "postcode": patient.postcode,
        "phone": patient.phone,
        "email": patient.email,
        "preferred_contact": patient.preferred_contact.value,
        "communication_needs": patient.communication_needs,
        "access_needs": patient.access_needs,
        "gp_practice_id": patient.gp_practice_id,
    }


def transition_json(step: ReferralTransition) -> dict[str, Any]:
    return {
        "from": step.from_status.value if step.from_status else None,
        "to": step.to_status.value,
        "at": _iso(step.at),
        "effective_on": _iso(step.effective_on),
        "actor": step.actor.name if step.actor else None,
        "reason": step.reason,
        "note": step.note,
        "snomed_code": step.snomed_code,
    }


def referral_json(referral: Referral, viewer: Any = None) -> dict[str, Any]:
    """The referral as JSON. A `viewer` sees the person as their scope allows (see
    `person_seen_by`); without one, the stored record, for the service's own use."""
    person = referral.patient if viewer is None else person_seen_by(viewer, referral)
    return {
        "id": referral.id,
        "status": referral.status.value,
        "pathway": referral.pathway.value,
        "referrer_type": referral.referrer_type.value,
        "reason": referral.reason,
        "interests": list(referral.interests or []),
        "consent": referral.consent,
        "risk_flag": referral.risk_flag,
        "risk_note": referral.risk_note,
        "received_on": _iso(referral.received_on),
        "status_changed_at": _iso(referral.status_changed_at),
        "first_contact_at": _iso(referral.first_contact_at),
        "closed_on": _iso(referral.closed_on),
        "snomed_code": referral.snomed_code,
        "new_episode_reason": referral.new_episode_reason,
        "gp_practice_id": referral.gp_practice_id,
        "referred_by_id": referral.referred_by_id,
        "assigned_to_id": referral.assigned_to_id,
        "created_at": _iso(referral.created_at),
        "patient": patient_json(person),
        "timeline": [transition_json(step) for step in referral.transitions],
    }


def _referral_url(referral_id: int) -> str:
    return url_for("api.get_referral", referral_id=referral_id)


# Idempotency: the first successful answer to a key is stored with the referral it created, in
# the same transaction, and replayed on a retry. Refusals (422, 409) create nothing, are not
# stored, and a retry is simply checked again.


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key:
        raise validation_problem({IDEMPOTENCY_HEADER: ["Must not be empty"]})
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise validation_problem(
            {IDEMPOTENCY_HEADER: [f"Must be {IDEMPOTENCY_KEY_MAX} characters or fewer"]}
        )
    return key


def request_fingerprint(payload: Any) -> str:
    """The same JSON sent again, in any key order or spacing, has the same fingerprint."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored_answer(key: str) -> IdempotentRequest | None:
    """The answer kept for the current user's `Idempotency-Key`, if that key was used before."""
    return db.session.scalar(
        select(IdempotentRequest).where(
            IdempotentRequest.user_id == current_user.id, IdempotentRequest.key == key
        )
    )


def _replay(stored: IdempotentRequest, fingerprint: str) -> Response:
    if stored.endpoint != request.endpoint or stored.request_hash != fingerprint:
        message = (
            "This Idempotency-Key was already used for a different request. "
            "Send a new key with a new request"
        )
        raise ApiProblem(
            422, message, kind="idempotency-key-reused", errors={IDEMPOTENCY_HEADER: [message]}
        )
    referral_id = stored.body.get("id")
    # The answer shows the person's record again, so it is audited as a view.
    record(
        current_user,
        "referral.viewed",
        object_type="referral",
        object_id=referral_id,
        via="idempotent_replay",
    )
    db.session.commit()
    response = jsonify(stored.body)
    response.status_code = stored.status_code
    response.headers["Idempotent-Replayed"] = "true"
    if referral_id is not None:
        response.headers["Location"] = _referral_url(referral_id)
    return response


def _claim(key: str, fingerprint: str) -> IdempotentRequest | None:
    """Reserve the key in this transaction, or None when a concurrent request got it first.

    The unique (user_id, key) constraint decides the race: the second insert waits for the first
    transaction and fails once it commits.
    """
    claim = IdempotentRequest(
        user_id=current_user.id,
        key=key,
        endpoint=request.endpoint or "",
        request_hash=fingerprint,
        status_code=0,
        body={},
    )
    db.session.add(claim)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    return claim


def _duplicate_problem(found: OpenReferral) -> ApiProblem:
    """The open referral is named only when it is within the caller's scope."""
    if found.referral is None:
        return ApiProblem(
            409,
            f"{OPEN_ELSEWHERE} If this is a new need, send new_episode_reason to say why",
            kind="duplicate-open-referral",
        )
    return ApiProblem(
        409,
        "This person already has an open referral. Use it, or send new_episode_reason to say "
        "why this is a new episode",
        kind="duplicate-open-referral",
        open_referral_id=found.referral.id,
    )


@bp.post("/referrals")
@allow(*REFERRING)
@operation(
    "Refer a person",
    roles="referrer (for their own practice), link_worker, admin",
    tags=["referrals"],
    parameters=[_IDEMPOTENCY_PARAMETER],
    request_body=ref("ReferralInput"),
    responses={
        201: {
            **json_response("The referral, received", ref("Referral")),
            "headers": _CREATED_HEADERS,
        },
        409: {
            "description": (
                "The NHS number already has an open referral and no new_episode_reason was "
                "given; `open_referral_id` names it when the caller may see it, and otherwise "
                "nothing about it is said: the link workers are told instead"
            ),
            "content": {"application/problem+json": {"schema": ref("DuplicateReferralProblem")}},
        },
        422: PROBLEM_RESPONSE,
    },
)
def create_referral_view() -> ResponseReturnValue:
    key = _idempotency_key()
    payload = json_body()
    fingerprint = request_fingerprint(payload)
    if key is not None:
        stored = stored_answer(key)
        if stored is not None:
            return _replay(stored, fingerprint)
    try:
        details = referral_details(current_user, payload, today=today())
    except InvalidPayload as error:
        raise validation_problem(error.errors) from error

    claim = None
    if key is not None:
        claim = _claim(key, fingerprint)
        if claim is None:
            stored = stored_answer(key)
            if stored is None:  # the other request gave up; nothing was recorded
                raise ApiProblem(409, "A request with this Idempotency-Key was interrupted")
            return _replay(stored, fingerprint)
    try:
        referral = create_referral(current_user, details, today=today())
    except DuplicateOpenReferral as duplicate:
        db.session.rollback()
        duplicate_refused(current_user, duplicate)
        db.session.commit()
        raise _duplicate_problem(duplicate.found) from duplicate
    except IntegrityError as error:
        # A concurrent request recorded this person first (unique NHS number): answer as if it
        # had finished before this one started.
        db.session.rollback()
        found = open_referral_check(current_user, details.patient.nhs_number or "")
        if found is not None and not details.new_episode_reason.strip():
            raise _duplicate_problem(found) from error
        raise ApiProblem(
            409, "This person's record changed while the referral was recorded. Send it again"
        ) from error

    db.session.expire(referral, ["transitions"])  # the service added the first step by id
    body = referral_json(referral, current_user)
    if claim is not None:
        claim.status_code = 201
        claim.body = body
    db.session.commit()
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = _referral_url(referral.id)
    return response


def _list_filters() -> list[Any]:
    """WHERE clauses from the query string; a bad value is a 422 naming the parameter."""
    args = request.args
    errors: dict[str, list[str]] = {}
    clauses: list[Any] = []
    statuses = args.getlist("status")
    if statuses:
        unknown = [s for s in statuses if s not in Status._value2member_map_]
        if unknown:
            errors["status"] = ["Choose from: " + ", ".join(_values(Status))]
        else:
            clauses.append(Referral.status.in_([Status(s) for s in statuses]))
    pathway = args.get("pathway")
    if pathway:
        if pathway in Pathway._value2member_map_:
            clauses.append(Referral.pathway == Pathway(pathway))
        else:
            errors["pathway"] = ["Choose from: " + ", ".join(_values(Pathway))]
    practice = args.get("gp_practice_id")
    if practice:
        if practice.isascii() and practice.isdigit() and len(practice) <= 9:
            clauses.append(Referral.gp_practice_id == int(practice))
        else:
            errors["gp_practice_id"] = ["Must be the id of a GP practice, a whole number"]
    nhs_number = args.get("nhs_number")
    if nhs_number:
        try:
            digits = clean_nhs_number(nhs_number[:20])
        except InvalidValue as error:
            errors["nhs_number"] = [str(error)]
        else:
            clauses.append(
                Referral.patient_id.in_(select(Patient.id).where(Patient.nhs_number == digits))
            )
    if errors:
        raise validation_problem(errors)
    return clauses


@bp.get("/referrals")
@allow(*REFERRING)
@operation(
    "List referrals",
    roles="referrer (their practice's referrals), link_worker and admin (all)",
    tags=["referrals"],
    parameters=[*PAGE_PARAMETERS, *_FILTER_PARAMETERS],
    responses={
        200: json_response(
            "A page of referrals, most recently received first", page_of("Referral")
        ),
        422: PROBLEM_RESPONSE,
    },
)
def list_referrals() -> ResponseReturnValue:
    query = (
        scoped_referrals(current_user)
        .where(*_list_filters())
        .options(
            joinedload(Referral.patient),
            joinedload(Referral.reconciliation),
            selectinload(Referral.transitions).joinedload(ReferralTransition.actor),
        )
        .order_by(Referral.received_on.desc(), Referral.id.desc())
    )
    shown: list[Referral] = []

    def serialise(referral: Referral) -> dict[str, Any]:
        shown.append(referral)
        return referral_json(referral, current_user)

    page = paginate(query, serialise)
    referrals_listed(current_user, shown)
    return jsonify(page)


@bp.get("/referrals/<int:referral_id>")
@allow(*REFERRING)
@operation(
    "A referral with its patient and timeline",
    roles="referrer (their practice's referrals), link_worker, admin",
    tags=["referrals"],
    responses={
        200: json_response("The referral", ref("Referral")),
        404: PROBLEM_RESPONSE,
    },
)
def get_referral(referral_id: int) -> ResponseReturnValue:
    referral = get_referral_or_404(referral_id, current_user)
    referral_viewed(current_user, referral)
    return jsonify(referral_json(referral, current_user))


@bp.post("/referrals/<int:referral_id>/transitions")
@allow(*TRIAGING)
@operation(
    "Move a referral along its lifecycle",
    roles="link_worker, admin",
    tags=["referrals"],
    request_body=ref("TransitionInput"),
    responses={
        201: json_response("The referral after the move", ref("Referral")),
        404: PROBLEM_RESPONSE,
        422: {
            **PROBLEM_RESPONSE,
            "description": (
                "Invalid fields, or a move the lifecycle does not allow (including moves only "
                "enrolment makes); `detail` says why"
            ),
        },
    },
)
def create_transition(referral_id: int) -> ResponseReturnValue:
    # Locked on PostgreSQL so two moves of one referral cannot both start from the same status;
    # its courses first, in the order every change takes them.
    lock_courses_of(referral_id)
    referral = db.first_or_404(
        scoped_referrals(current_user).where(Referral.id == referral_id).with_for_update()
    )
    try:
        move = transition_request(json_body(), today=today(), received_on=referral.received_on)
    except InvalidPayload as error:
        raise validation_problem(error.errors) from error
    try:
        close_referral(
            current_user,
            referral,
            move.to,
            reason=move.reason,
            note=move.note,
            on=move.on,
            today=today(),
        )
    except CourseRuleBroken as broken:
        db.session.rollback()
        raise ApiProblem(
            422,
            str(broken),
            kind="transition-refused",
            errors={broken.field or "to": [str(broken)]},
        ) from broken
    except TransitionRefused as refused:
        db.session.rollback()
        message = str(refused)
        field = "reason" if message == "Give a reason" else "to"
        raise ApiProblem(
            422, message, kind="transition-refused", errors={field: [message]}
        ) from refused
    db.session.commit()
    response = jsonify(referral_json(referral, current_user))
    response.status_code = 201
    return response
