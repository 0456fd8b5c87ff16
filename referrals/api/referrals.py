"""Referrals over the API: create (idempotently), list, read, and move along the lifecycle."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any, Literal, NoReturn, get_args, get_type_hints

from flask import Response, make_response, request, url_for
from flask_login import current_user
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from referrals import clock, idempotency
from referrals.api import bp
from referrals.audit import record
from referrals.auth.models import Organisation, OrganisationKind, Role
from referrals.courses.services import close_referral, lock_courses_of
from referrals.dates import check_past, check_received
from referrals.extensions import db
from referrals.idempotency import IDEMPOTENCY_HEADER
from referrals.intake import validation as intake_rules
from referrals.intake.forms import NAME_MAX, TEXT_MAX
from referrals.intake.identity import PersonAsSent, person_seen_by
from referrals.intake.lifecycle import Status
from referrals.intake.models import IDEMPOTENCY_KEY_MAX, IdempotentRequest, ReferralTransition
from referrals.intake.models import Patient as PatientRecord
from referrals.intake.models import Referral as ReferralRecord
from referrals.intake.scope import REFERRING, TRIAGING, get_referral_or_404, scoped_referrals
from referrals.intake.services import (
    OPEN_ELSEWHERE,
    DuplicateOpenReferral,
    OpenReferral,
    PatientDetails,
    ReferralDetails,
    create_referral,
    duplicate_refused,
    open_referral_check,
    practice_for,
    referral_viewed,
    referrals_listed,
)
from referrals.intake.validation import (
    InvalidValue,
    clean_date_of_birth,
    clean_email,
    clean_nhs_number,
    clean_phone,
    clean_postcode,
)
from referrals.openapi import (
    Answer,
    Page,
    PageQuery,
    columns,
    dump,
    formatted,
    json_body,
    operation,
    paginate,
    scoped,
    text_schema,
)
from referrals.problems import ApiProblem, validation_problem
from referrals.security import allow
from referrals.typed import Body, Id, Text, dated, refuse_any, rule
from referrals.vocab import ArtForm, ContactMethod, Ethnicity, Pathway, ReferrerType, Sex

Free = Annotated[str, Text(TEXT_MAX)]
Postcode = Annotated[
    str, Text(12, required=True), rule(clean_postcode, InvalidValue), formatted("uk-postcode")
]


# Requests ---------------------------------------------------------------------------------


Preferred = Literal["phone", "email", "text", "letter"]
_CONTACT = {
    name: {"type": "string", "format": form}
    for name, form in (("phone", "uk-phone"), ("email", "email"))
}


class PatientInput(Body):
    """The person referred. Give a phone number, an email address or both."""

    model_config = ConfigDict(
        json_schema_extra=intake_rules.contact_schema(get_args(Preferred), _CONTACT)
    )

    nhs_number: Annotated[
        str,
        Text(20, required=True),
        rule(clean_nhs_number, InvalidValue),
        formatted("nhs-number"),
    ]
    given_name: Annotated[str, Text(NAME_MAX, required=True)]
    family_name: Annotated[str, Text(NAME_MAX, required=True)]
    date_of_birth: Annotated[
        date, formatted("date-of-birth"), dated(clean_date_of_birth, InvalidValue)
    ]
    sex: Sex
    ethnicity: Ethnicity = Field(description="ONS 2021 high-level group, or not_stated")
    postcode: Postcode
    phone: (
        Annotated[str, Text(30), rule(clean_phone, InvalidValue), formatted("uk-phone")] | None
    ) = None
    email: Annotated[str, Text(254), rule(clean_email, InvalidValue), formatted("email")] | None = (
        Field(default=None, validate_default=True)
    )
    preferred_contact: Preferred | None = Field(
        default=None, description="Default: phone when a phone number is given, else email"
    )
    communication_needs: Free = ""
    access_needs: Free = ""

    @field_validator("email")
    @classmethod
    def _contactable(cls, email: str | None, info: ValidationInfo) -> str | None:
        if "phone" in info.data:  # not when the phone number was refused itself
            refuse_any(intake_rules.contactable(info.data["phone"], email))
        return email

    @field_validator("preferred_contact")
    @classmethod
    def _reachable(cls, preferred: str | None, info: ValidationInfo) -> str | None:
        phone, email = info.data.get("phone"), info.data.get("email")
        refuse_any(intake_rules.reachable(preferred, phone, email))
        return preferred


class ReferralInput(Body):
    model_config = ConfigDict(
        json_schema_extra=intake_rules.risk_schema(text_schema(TEXT_MAX, required=True))
    )

    patient: PatientInput
    gp_practice_id: Id | None = Field(
        default=None,
        description=(
            "The person's GP practice, an active organisation of kind gp_practice. Required for "
            "link workers and admins; referrers may leave it out and always refer for their own "
            "practice."
        ),
    )
    referrer_type: ReferrerType
    pathway: Pathway
    reason: Annotated[str, Text(TEXT_MAX, required=True)]
    interests: list[ArtForm] = []
    consent: Literal[True] = Field(description="The person agrees to be referred")
    risk_flag: bool = False
    risk_note: Free = Field(
        default="", validate_default=True, description="Required when risk_flag is true"
    )
    received_on: Annotated[date, formatted("past-date"), dated(check_received)] | None = Field(
        default=None,
        description="Default today; earlier dates (from 2000-01-01) load history; never later",
    )
    new_episode_reason: Free = Field(
        default="", description="Why this is a new referral when the person has an open one"
    )
    required = {
        "patient": "Enter the person's details",
        "patient.nhs_number": "Enter the NHS number",
        "patient.given_name": "Enter the first name",
        "patient.family_name": "Enter the last name",
        "patient.date_of_birth": "Enter the date of birth",
        "patient.sex": "Select sex",
        "patient.ethnicity": "Select an ethnic group or Not stated",
        "patient.postcode": "Enter the postcode",
        "referrer_type": "Select who is referring",
        "pathway": "Select a pathway",
        "reason": "Enter the reason for referral",
        "consent": "Confirm the person agrees to be referred",
    }

    @field_validator("risk_note")
    @classmethod
    def _risk(cls, note: str, info: ValidationInfo) -> str:
        refuse_any(intake_rules.risk_described(bool(info.data.get("risk_flag")), note))
        return note


class TransitionInput(Body):
    to: Status = Field(
        description="The new status. enrolled, waitlisted, started and completed are set by "
        "enrolment, never by hand."
    )
    reason: Free = Field(default="", description="Required to close or reopen a referral")
    note: Free = ""
    on: Annotated[date, formatted("past-date"), dated(partial(check_past, field="on"))] | None = (
        Field(default=None, description="When it took effect; default today")
    )
    required = {"to": "Select the new status"}


class ReferralQuery(PageQuery):
    status: list[Status] = Field(default=[], description="Repeat to match any of several")
    pathway: Pathway | None = None
    gp_practice_id: Id | None = None
    nhs_number: Annotated[str, Field(pattern=r"^([0-9][ -]?){9}[0-9]$")] | None = Field(
        default=None,
        description="10 digits; spaces allowed. A number failing its check digit matches nobody",
    )
    lists = frozenset({"status"})


# Answers ----------------------------------------------------------------------------------


class _Person(Answer):
    @model_validator(mode="wrap")
    @classmethod
    def _hide_stand_in_birth_date(cls, person: Any, handler: Any) -> Any:
        """A pseudonymised record's date of birth is a stand-in, never to be taken as real."""
        answer = handler(person)
        if getattr(person, "anonymised_at", None):
            answer.date_of_birth = None
        return answer


# The person as their record or as their practice sent them: one shape, `PersonAsSent`'s.
_PERSON_FIELDS: dict[str, Any] = {
    name: (hint, ...)
    for name, hint in get_type_hints(PersonAsSent).items()
    if name != "gp_practice"
}
Patient = create_model(
    "Patient",
    __base__=_Person,
    __doc__="The person referred. Identifiers and the date of birth are null once the record "
    "is pseudonymised.",
    **_PERSON_FIELDS,
)


class Transition(Answer):
    """One step of a referral's timeline, oldest first."""

    from_status: Status | None = Field(serialization_alias="from")
    to_status: Status = Field(serialization_alias="to")
    __annotations__ |= columns(ReferralTransition, "at effective_on reason note snomed_code")
    actor: Annotated[str | None, BeforeValidator(lambda user: getattr(user, "name", user))]


class Referral(Answer):
    __annotations__ = columns(
        ReferralRecord,
        "id status pathway referrer_type reason consent risk_flag risk_note received_on "
        "first_contact_at closed_on snomed_code new_episode_reason gp_practice_id "
        "referred_by_id assigned_to_id",
    )
    interests: list[ArtForm]
    status_changed_at: datetime | None
    created_at: datetime | None
    patient: Patient  # type: ignore[valid-type]
    timeline: list[Transition]

    source = ReferralRecord

    @classmethod
    def read(cls, referral: Any, context: dict[str, Any]) -> Any:
        """The person as the viewer's scope allows (`person_seen_by`); without a viewer, the
        stored record, for the service's own use."""
        viewer = context.get("viewer")
        fields = {name: getattr(referral, name) for name in cls.model_fields if name != "timeline"}
        fields["interests"] = list(referral.interests or [])
        if viewer is not None:
            fields["patient"] = person_seen_by(viewer, referral)
        return {**fields, "timeline": referral.transitions}


# Idempotency: the first successful answer to a key is stored with the referral it created, in
# the same transaction, and replayed on a retry. Refusals (422, 409) create nothing, are not
# stored, and a retry is simply checked again.


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not key.strip():
        raise validation_problem({IDEMPOTENCY_HEADER: ["Must not be empty"]})
    if key is not None and len(key.strip()) > IDEMPOTENCY_KEY_MAX:
        message = f"Must be {IDEMPOTENCY_KEY_MAX} characters or fewer"
        raise validation_problem({IDEMPOTENCY_HEADER: [message]})
    return key.strip() if key is not None else None


def _key_reused() -> NoReturn:
    message = (
        "This Idempotency-Key was already used for a different request. "
        "Send a new key with a new request"
    )
    errors = {IDEMPOTENCY_HEADER: [message]}
    raise ApiProblem(422, message, kind="idempotency-key-reused", errors=errors)


def _interrupted() -> NoReturn:  # the other request with the key gave up
    raise ApiProblem(409, "A request with this Idempotency-Key was interrupted")


def _replay(stored: IdempotentRequest) -> Response:
    referral_id = stored.body.get("id")
    # The answer shows the person's record again, so it is audited as a view.
    record(current_user, "referral.viewed", object_type="referral", object_id=referral_id)
    db.session.commit()
    response = idempotency.replayed(stored)
    if referral_id is not None:
        response.headers["Location"] = url_for("api.get_referral", referral_id=referral_id)
    return response


def duplicate_problem(found: OpenReferral) -> ApiProblem:
    """The open referral is named only when it is within the caller's scope."""
    if found.referral is None:
        detail = f"{OPEN_ELSEWHERE} If this is a new need, send new_episode_reason to say why"
        return ApiProblem(409, detail, kind="duplicate-open-referral")
    detail = (
        "This person already has an open referral. Use it, or send new_episode_reason to say "
        "why this is a new episode"
    )
    return ApiProblem(
        409, detail, kind="duplicate-open-referral", open_referral_id=found.referral.id
    )


@bp.errorhandler(DuplicateOpenReferral)
def _duplicate(duplicate: DuplicateOpenReferral) -> Response:
    """Nothing of the refused referral is kept; the refusal itself is recorded."""
    db.session.rollback()
    duplicate_refused(current_user, duplicate)
    db.session.commit()
    return duplicate_problem(duplicate.found).response()


def _details(body: ReferralInput) -> ReferralDetails:
    """The request as the details `create_referral` records: referrers refer for their own
    practice; others name an active GP practice."""
    requested = body.gp_practice_id
    if current_user.role == Role.REFERRER:
        if requested is not None and requested != current_user.organisation_id:
            message = "You refer for your own practice. Leave this out or send your practice's id"
            raise validation_problem({"gp_practice_id": [message]})
        practice = practice_for(current_user, None)
    else:
        found = db.session.get(Organisation, requested) if requested else None
        if found is None or found.kind != OrganisationKind.GP_PRACTICE or not found.active:
            refused = "Must be the id of an active GP practice" if requested else None
            raise validation_problem(
                {"gp_practice_id": [refused or "Select the person's GP practice"]}
            )
        practice = practice_for(current_user, found)
    person = body.patient.model_dump()
    preferred = person.pop("preferred_contact")
    contact = ContactMethod(preferred or ("phone" if person["phone"] else "email"))
    return ReferralDetails(
        patient=PatientDetails(**person, preferred_contact=contact),
        gp_practice=practice,
        **body.model_dump(exclude={"patient", "gp_practice_id", "interests"}),
        interests=list(dict.fromkeys(body.interests)),
    )


REPLAY_HEADERS = {
    "Location": "The referral's URL",
    "Idempotent-Replayed": "`true` when this is the stored answer to an earlier request",
}
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "description": "Any unique string of up to 200 characters. A retry with the same key and "
    "body returns the first answer instead of recording a second referral; the same key with "
    "a different body is refused (422).",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
}


@bp.post("/referrals")
@allow(*REFERRING)
@operation(
    "referrals",
    answer=Referral,
    status=201,
    headers=REPLAY_HEADERS,
    problems=["duplicate-open-referral", "idempotency-key-reused", "conflict"],
    parameters=[IDEMPOTENCY_PARAMETER],
)
def create_referral_view(body: ReferralInput) -> Response:
    """Refer a person

    Who may call it: referrer (for their own practice), link_worker, admin."""
    key, fingerprint = _idempotency_key(), idempotency.request_fingerprint(json_body())
    once = (current_user, key, fingerprint, _key_reused) if key is not None else None
    if once and (retry := idempotency.retried(*once, _replay)) is not None:
        return retry
    details = _details(body)
    claimed = idempotency.claim_or_retried(*once, _interrupted, _replay) if once else None
    if isinstance(claimed, Response):
        return claimed
    referral = _record(details)
    db.session.expire(referral, ["transitions"])  # the service added the first step by id
    shown = dump(Referral, referral, viewer=current_user)
    if claimed is not None:
        claimed.status_code, claimed.body = 201, shown
    location = url_for("api.get_referral", referral_id=referral.id)
    return make_response(shown, 201, {"Location": location})


def _record(details: ReferralDetails) -> ReferralRecord:
    try:
        return create_referral(current_user, details, today=clock.today())
    except IntegrityError as error:
        # A concurrent request recorded this person first (unique NHS number): answer as if it
        # had finished before this one started.
        db.session.rollback()
        found = open_referral_check(current_user, details.patient.nhs_number or "")
        if found is not None and not details.new_episode_reason.strip():
            raise DuplicateOpenReferral(found) from error
        detail = "This person's record changed while the referral was recorded. Send it again"
        raise ApiProblem(409, detail, kind="conflict") from error


@bp.get("/referrals")
@allow(*REFERRING)
@operation("referrals", answer=Page[Referral])
def list_referrals(query: ReferralQuery) -> Any:
    """List referrals, most recently received first

    Who may call it: referrer (their practice's referrals), link_worker and admin (all)."""
    clauses: list[Any] = [ReferralRecord.status.in_(query.status)] if query.status else []
    clauses += [ReferralRecord.pathway == query.pathway] if query.pathway else []
    clauses += (
        [ReferralRecord.gp_practice_id == query.gp_practice_id] if query.gp_practice_id else []
    )
    if query.nhs_number:
        digits = re.sub(r"[ -]", "", query.nhs_number)
        by_number = select(PatientRecord.id).where(PatientRecord.nhs_number == digits)
        clauses.append(ReferralRecord.patient_id.in_(by_number))
    rows = (
        scoped_referrals(current_user)
        .where(*clauses)
        .options(
            joinedload(ReferralRecord.patient),
            joinedload(ReferralRecord.reconciliation),
            selectinload(ReferralRecord.transitions).joinedload(ReferralTransition.actor),
        )
        .order_by(ReferralRecord.received_on.desc(), ReferralRecord.id.desc())
    )
    page = paginate(rows, query)
    referrals_listed(current_user, page["items"])
    return page


@bp.get("/referrals/<int:referral_id>")
@allow(*REFERRING)
@operation("referrals", answer=Referral, load=scoped(get_referral_or_404))
def get_referral(referral: ReferralRecord) -> ReferralRecord:
    """A referral with its patient and timeline

    Who may call it: referrer (their practice's referrals), link_worker, admin."""
    referral_viewed(current_user, referral)
    return referral


def _locked_referral(referral_id: int) -> ReferralRecord:
    """Locked on PostgreSQL so two moves of one referral cannot both start from the same
    status; its courses first, in the order every change takes them."""
    lock_courses_of(referral_id)
    return db.first_or_404(
        scoped_referrals(current_user).where(ReferralRecord.id == referral_id).with_for_update()
    )


LOCKED, MOVE = _locked_referral, (422, "transition-refused", "to")


@bp.post("/referrals/<int:referral_id>/transitions")
@allow(*TRIAGING)
@operation("referrals", answer=Referral, status=201, load=LOCKED, refusal=MOVE)
def create_transition(referral: ReferralRecord, body: TransitionInput) -> ReferralRecord:
    """Move a referral along its lifecycle

    Who may call it: link_worker, admin."""
    if body.on is not None and body.on < referral.received_on:
        message = "The date must be on or after the date the referral was received"
        raise ApiProblem(422, message, kind="transition-refused", errors={"on": [message]})
    close_referral(
        current_user, referral, body.to, **body.model_dump(exclude={"to"}), today=clock.today()
    )
    db.session.expire(referral, ["transitions"])  # the service inserts its steps by id
    return referral
