"""Referral services: intake with duplicate checks, transitions, contact and conversations.

Services take explicit arguments, flush, write the audit entry and leave the commit to the
request, job or command that called them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from referrals.audit import record, record_many, record_view, record_views
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.dates import check_received
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.identity import (
    DETAIL_FIELDS,
    open_reconciliation,
    update_known_person,
)
from referrals.intake.lifecycle import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING,
    Actor,
    Status,
    TransitionRefused,
    check_transition,
    snomed_code_for,
)
from referrals.intake.models import (
    ContactAttempt,
    Conversation,
    Patient,
    Referral,
    ReferralTransition,
)
from referrals.intake.scope import scoped_referrals, sees_patient
from referrals.notifications import messages
from referrals.notifications.services import notify
from referrals.vocab import (
    ArtForm,
    ContactMethod,
    ContactOutcome,
    Ethnicity,
    Pathway,
    ReferrerType,
    Sex,
)


@dataclass(frozen=True)
class PatientDetails:
    # Optional only when people refer themselves; staff always give it.
    nhs_number: str | None
    given_name: str
    family_name: str
    date_of_birth: date
    sex: Sex
    ethnicity: Ethnicity
    postcode: str
    phone: str | None
    email: str | None
    preferred_contact: ContactMethod
    communication_needs: str = ""
    access_needs: str = ""


@dataclass(frozen=True)
class ReferralDetails:
    patient: PatientDetails
    gp_practice: Organisation
    referrer_type: ReferrerType
    pathway: Pathway
    reason: str
    interests: list[ArtForm] = field(default_factory=list)
    consent: bool = True
    risk_flag: bool = False
    risk_note: str = ""
    received_on: date | None = None
    new_episode_reason: str = ""
    # The course a person asked to join when they referred themselves.
    course_of_interest_id: int | None = None


# What a referrer is told when the person's open referral is outside their scope: nothing about
# it (no id, date or status), only who will pick it up.
OPEN_ELSEWHERE = (
    "The link worker service already supports this person and will pick this up. They will "
    "contact your practice if they need to."
)


@dataclass(frozen=True)
class OpenReferral:
    """What the duplicate check may tell the user about the person's open referral.

    `referral` is the open referral when it is within the user's scope; None when it is not,
    and then `elsewhere_id` names it for the link workers alone.
    """

    referral: Referral | None
    elsewhere_id: int | None = None


class DuplicateOpenReferral(Exception):
    """The person already has an open referral and no new-episode reason was given."""

    def __init__(self, found: OpenReferral) -> None:
        super().__init__("the person already has an open referral")
        self.found = found
        self.referral = found.referral


def open_referrals_for(nhs_number: str) -> list[Referral]:
    return list(
        db.session.scalars(
            select(Referral)
            .join(Patient)
            .where(Patient.nhs_number == nhs_number, Referral.status.in_(OPEN_STATUSES))
            .order_by(Referral.received_on, Referral.id)
        )
    )


def open_referral_check(actor: User, nhs_number: str) -> OpenReferral | None:
    """The duplicate check, for the form's Find and for sending alike: the person's open
    referral as this user may learn of it, or None when there is none."""
    open_ones = open_referrals_for(nhs_number)
    if not open_ones:
        return None
    visible = set(
        db.session.scalars(
            scoped_referrals(actor)
            .with_only_columns(Referral.id)
            .where(Referral.id.in_([r.id for r in open_ones]))
        )
    )
    for referral in open_ones:
        if referral.id in visible:
            return OpenReferral(referral)
    return OpenReferral(None, elsewhere_id=open_ones[0].id)


def tell_link_workers(referral_id: int, text: str, *, kind: str) -> None:
    """A message to the referral's link worker, or to every active link worker when nobody
    is assigned, linking to the referral."""
    assigned = db.session.scalar(select(Referral.assigned_to_id).where(Referral.id == referral_id))
    worker = db.session.get(User, assigned) if assigned else None
    for user in [worker] if worker is not None and worker.active else link_workers():
        notify(user=user, text=text, link=referral_path(referral_id), kind=kind)


def duplicate_refused(actor: User, duplicate: DuplicateOpenReferral) -> None:
    """After a refused duplicate: when its open referral is outside the sender's scope, tell
    the link workers that another practice tried to refer the person."""
    elsewhere = duplicate.found.elsewhere_id
    if elsewhere is None:
        return
    sender = actor.organisation.name if actor.organisation else actor.name
    tell_link_workers(
        elsewhere,
        f"{sender} tried to refer the person on open referral R{elsewhere}. Pick it up with them.",
        kind="duplicate_referral",
    )
    record(actor, "referral.duplicate_refused", object_type="referral", object_id=elsewhere)


def practice_for(actor: User, requested: Organisation | None) -> Organisation:
    """Referrers always refer for their own practice; others choose a practice."""
    if actor.role == Role.REFERRER:
        return actor.organisation
    if requested is None or requested.kind != OrganisationKind.GP_PRACTICE:
        raise ValueError("a GP practice is required")
    return requested


def _lock_patient(nhs_number: str) -> Patient | None:
    # On PostgreSQL the row lock serialises two referrals for one person; SQLite's writing
    # transactions already hold the database write lock (BEGIN IMMEDIATE).
    return db.session.scalar(
        select(Patient).where(Patient.nhs_number == nhs_number).with_for_update()
    )


def _new_patient(person: PatientDetails, practice: Organisation) -> tuple[Patient, bool]:
    """Insert the person, returning (person, True); if a simultaneous referral inserted them
    first, lock and return (theirs, False)."""
    if not person.nhs_number:
        patient = Patient(
            nhs_number=None,
            gp_practice=practice,
            **{name: getattr(person, name) for name in DETAIL_FIELDS},
        )
        db.session.add(patient)
        db.session.flush()
        return patient, True
    try:
        with db.session.begin_nested():
            patient = Patient(
                nhs_number=person.nhs_number,
                gp_practice=practice,
                **{name: getattr(person, name) for name in DETAIL_FIELDS},
            )
            db.session.add(patient)
            db.session.flush()
        return patient, True
    except IntegrityError:
        existing = _lock_patient(person.nhs_number)
        if existing is None:
            raise
        return existing, False


def create_referral(
    actor: User, details: ReferralDetails, *, today: date, at: datetime | None = None
) -> Referral:
    """Record a referral, creating or updating the patient. Refuses an unexplained duplicate.

    `at` records when it was entered, for history loaded after the fact; default now.
    Raises DateRefused for a received date outside the service's bounds.
    """
    if details.received_on is not None:
        check_received(details.received_on, today)
    person = details.patient
    # Without an NHS number (a person referring themselves) nobody can be matched: the
    # referral always brings a new person, whom the link workers may later find is known.
    patient = _lock_patient(person.nhs_number) if person.nhs_number else None
    is_new = False
    if patient is None:
        patient, is_new = _new_patient(person, details.gp_practice)
    if person.nhs_number and not details.new_episode_reason.strip():
        found = open_referral_check(actor, person.nhs_number)
        if found is not None:
            raise DuplicateOpenReferral(found)
    in_scope = sees_patient(actor, patient)
    if in_scope and not is_new:
        update_known_person(actor, patient, person, details.gp_practice)

    received_on = details.received_on or today
    referral = Referral(
        patient=patient,
        gp_practice=details.gp_practice,
        referred_by_id=actor.id,
        referrer_type=details.referrer_type,
        pathway=details.pathway,
        reason=details.reason.strip(),
        interests=[a.value for a in details.interests],
        consent=details.consent,
        risk_flag=details.risk_flag,
        risk_note=details.risk_note.strip(),
        received_on=received_on,
        status=Status.RECEIVED,
        status_changed_at=at or utcnow(),
        new_episode_reason=details.new_episode_reason.strip(),
        assigned_to_id=actor.id if actor.role == Role.LINK_WORKER else None,
        course_of_interest_id=details.course_of_interest_id,
    )
    db.session.add(referral)
    db.session.flush()
    db.session.add(
        ReferralTransition(
            referral_id=referral.id,
            from_status=None,
            to_status=Status.RECEIVED,
            effective_on=received_on,
            actor_id=actor.id,
            reason=details.new_episode_reason.strip(),
            at=at or utcnow(),
        )
    )
    if not in_scope and not is_new:
        task = open_reconciliation(actor, referral, patient, person)
        if task.is_open:
            tell_link_workers(
                referral.id,
                f"Referral R{referral.id} came from a practice the person is not registered "
                "with. Check the details it sent against their record.",
                kind="reconciliation",
            )
    record(actor, "referral.created", referral, patient_id=patient.id)
    return referral


def transition(
    actor: User | None,
    referral: Referral,
    target: Status,
    *,
    reason: str = "",
    note: str = "",
    on: date | None = None,
    by: Actor = Actor.PERSON,
    today: date | None = None,
    at: datetime | None = None,
) -> None:
    """Move a referral along the lifecycle, or raise TransitionRefused with a message.

    `at` records when it happened, for history loaded after the fact; default now.
    """
    transition_many(
        actor, [referral], target, reason=reason, note=note, on=on, by=by, today=today, at=at
    )


def transition_many(
    actor: User | None,
    referrals: Sequence[Referral],
    target: Status,
    *,
    reason: str = "",
    note: str = "",
    on: date | None = None,
    by: Actor = Actor.PERSON,
    today: date | None = None,
    at: datetime | None = None,
) -> None:
    """Move several referrals to the same status, all or none.

    The transition and audit rows are written as one batch, so a register that starts thirty
    people costs the same few statements as one that starts three.
    """
    for referral in referrals:
        check_transition(referral.status, target, actor=by, reason=reason)
    at = at or utcnow()
    effective_on = on or today or at.date()
    steps, audits = [], []
    for referral in referrals:
        current = referral.status
        code = snomed_code_for(current, target)
        steps.append(
            {
                "referral_id": referral.id,
                "from_status": current,
                "to_status": target,
                "effective_on": effective_on,
                "actor_id": actor.id if actor is not None else None,
                "reason": reason.strip(),
                "note": note.strip(),
                "snomed_code": code,
                "at": at,
            }
        )
        audits.append((referral, {"from_status": current.value, "to_status": target.value}))
        referral.status = target
        referral.status_changed_at = at
        if code:
            referral.snomed_code = code
        if target in CLOSED_STATUSES:
            referral.closed_on = effective_on
        elif current in CLOSED_STATUSES:
            referral.closed_on = None  # reopened
        _message_back_if_due(referral, current, target, at)
    if steps:
        db.session.execute(insert(ReferralTransition), steps)
        record_many(actor, "referral.transition", audits)


def referral_path(referral_id: int) -> str:
    """The referral page's path; built by hand so jobs and commands can use it too."""
    return f"/referrals/{referral_id}"


def _message_back_if_due(referral: Referral, current: Status, target: Status, at: datetime) -> None:
    """Tell the referring practice when the person accepts support, closes or completes."""
    code = snomed_code_for(current, target)
    if code == SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING:
        event = "accepted social prescribing support"
    elif target is Status.COMPLETED:
        event = "completed their arts course"
    elif target in CLOSED_STATUSES:
        event = f"was closed: {target.label.lower()}"
    else:
        return
    messages.message_back(referral, event=event, has_code=code is not None, at=at)
    notify(
        organisation=referral.gp_practice,
        kind="message_back",
        text=f"Referral R{referral.id} {event}. "
        + (
            "A letter with the code to record is attached."
            if code
            else "A letter is attached; there is no code to record."
        ),
        link=referral_path(referral.id),
        at=at,
    )


def log_contact_attempt(
    actor: User,
    referral: Referral,
    *,
    method: ContactMethod,
    outcome: ContactOutcome,
    note: str = "",
    at: datetime | None = None,
) -> ContactAttempt:
    """Log an attempt; the first one moves a new referral to `contacting`."""
    if referral.status not in OPEN_STATUSES:
        raise TransitionRefused("Reopen the referral before logging contact")
    attempt = ContactAttempt(
        referral_id=referral.id,
        method=method,
        outcome=outcome,
        note=note.strip(),
        actor_id=actor.id,
        at=at or utcnow(),
    )
    db.session.add(attempt)
    if referral.first_contact_at is None:
        referral.first_contact_at = attempt.at
    if referral.status is Status.RECEIVED:
        transition(
            actor,
            referral,
            Status.CONTACTING,
            note=f"{method.label}: {outcome.label}",
            on=attempt.at.date(),
            at=attempt.at,
        )
    if referral.assigned_to_id is None and actor.role == Role.LINK_WORKER:
        referral.assigned_to_id = actor.id
    db.session.flush()
    record(actor, "referral.contact_logged", referral, outcome=outcome.value)
    return attempt


def record_conversation(
    actor: User,
    referral: Referral,
    *,
    held_on: date,
    what_matters: str,
    agreed_next_steps: str = "",
    preferred_art_forms: list[ArtForm] | None = None,
    at: datetime | None = None,
) -> Conversation:
    """Record "what matters to you"; the person has accepted support, so it is assessed."""
    at = at or utcnow()
    if referral.status not in (Status.RECEIVED, Status.CONTACTING, Status.ASSESSED):
        raise TransitionRefused(
            f"A referral that is {referral.status.label.lower()} has already been assessed"
        )
    conversation = Conversation(
        referral_id=referral.id,
        held_on=held_on,
        what_matters=what_matters.strip(),
        agreed_next_steps=agreed_next_steps.strip(),
        preferred_art_forms=[a.value for a in preferred_art_forms or []],
        actor_id=actor.id,
        at=at,
    )
    db.session.add(conversation)
    if referral.first_contact_at is None:
        referral.first_contact_at = at
    if referral.status is not Status.ASSESSED:
        transition(
            actor,
            referral,
            Status.ASSESSED,
            note="What matters conversation recorded",
            on=held_on,
            at=at,
        )
    if referral.assigned_to_id is None and actor.role == Role.LINK_WORKER:
        referral.assigned_to_id = actor.id
    db.session.flush()
    record(actor, "referral.conversation_recorded", referral)
    return conversation


def assign(actor: User, referral: Referral, link_worker: User | None) -> None:
    if link_worker is not None and link_worker.id != referral.assigned_to_id:
        messages.referral_assigned(referral, link_worker, at=utcnow())
    referral.assigned_to_id = link_worker.id if link_worker else None
    record(actor, "referral.assigned", referral, to_user=link_worker.id if link_worker else None)


def referrals_listed(actor: Any, referrals: Sequence[Referral], **detail: Any) -> None:
    """A list or search shown: one audit entry per person on it, naming their referral."""
    record_views(
        actor,
        "referral.listed",
        [(r, {"patient_id": r.patient_id, **detail}) for r in referrals],
    )


def referral_viewed(actor: Any, referral: Referral, **detail: Any) -> None:
    """Every view of a person's referral is audited, kept whatever becomes of the request."""
    record_view(actor, "referral.viewed", referral, patient_id=referral.patient_id, **detail)


def link_workers() -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(User.role == Role.LINK_WORKER, User.active.is_(True))
            .order_by(User.name)
        )
    )
