"""A person's stored details: how a referral may change them, and reconciling what a practice
outside the person's own sent with what is stored.

A person's record changes only through someone whose scope includes them. A referral from within
scope fills in and updates details but never blanks one the sender left empty; a referral from
outside scope leaves the record as it is and opens a reconciliation for a link worker, who
accepts or keeps each difference. Every change is audited once, listing each field's old and new
value (the audit log is access-controlled; application logs never carry these values).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from referrals.audit import record
from referrals.auth.models import Organisation, User
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.models import (
    Patient,
    PatientReconciliation,
    ReconciliationStatus,
    Referral,
)
from referrals.intake.scope import sees_patient
from referrals.vocab import ContactMethod, Ethnicity, Sex

if TYPE_CHECKING:
    from referrals.intake.services import PatientDetails

# The person's details a referral carries, besides the NHS number and practice, in the order
# they are shown.
DETAIL_FIELDS = (
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "ethnicity",
    "postcode",
    "phone",
    "email",
    "preferred_contact",
    "communication_needs",
    "access_needs",
)
PERSON_FIELDS = (*DETAIL_FIELDS, "gp_practice_id")
FIELD_LABELS = {
    "given_name": "First name",
    "family_name": "Last name",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
    "ethnicity": "Ethnic group",
    "postcode": "Postcode",
    "phone": "Phone",
    "email": "Email",
    "preferred_contact": "Prefers",
    "communication_needs": "Communication needs",
    "access_needs": "Access needs",
    "gp_practice_id": "GP practice",
}
_ENUMS: dict[str, type[enum.Enum]] = {
    "sex": Sex,
    "ethnicity": Ethnicity,
    "preferred_contact": ContactMethod,
}


class ReconciliationRefused(ValueError):
    """The reconciliation cannot be resolved as asked; the message says why."""


def _json_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


def _model_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "date_of_birth":
        return date.fromisoformat(value)
    if name in _ENUMS:
        return _ENUMS[name](value)
    return value


def sent_values(person: PatientDetails, practice: Organisation) -> dict[str, Any]:
    """The person as a referral describes them, as JSON values."""
    values = {name: _json_value(getattr(person, name, None)) for name in PERSON_FIELDS}
    values["gp_practice_id"] = practice.id
    return values


def stored_values(patient: Patient) -> dict[str, Any]:
    """The stored person, as JSON values comparable with `sent_values`."""
    return {name: _json_value(getattr(patient, name)) for name in PERSON_FIELDS}


def proposed_changes(patient: Patient, sent: Mapping[str, Any]) -> dict[str, Any]:
    """The sent values that differ from the stored ones. A detail sent empty proposes nothing:
    leaving a field blank never blanks what is stored."""
    stored = stored_values(patient)
    return {
        name: value
        for name, value in sent.items()
        if name in stored and value not in (None, "") and value != stored[name]
    }


def change_person(
    actor: User, patient: Patient, changes: Mapping[str, Any], **detail: Any
) -> dict[str, dict[str, Any]]:
    """Write `changes` (JSON values) to the stored person and audit them in one entry that lists
    each changed field's old and new value. Returns those changes; nothing is written when no
    value differs."""
    stored = stored_values(patient)
    changed = {
        name: {"old": stored[name], "new": value}
        for name, value in changes.items()
        if stored[name] != value
    }
    if not changed:
        return {}
    for name in changed:
        setattr(patient, name, _model_value(name, changes[name]))
    db.session.flush()
    record(actor, "patient.updated", patient, changes=changed, **detail)
    return changed


def update_known_person(
    actor: User, patient: Patient, person: PatientDetails, practice: Organisation
) -> dict[str, dict[str, Any]]:
    """A referral from within the person's scope updates what it sent, never blanking a field."""
    return change_person(
        actor, patient, proposed_changes(patient, sent_values(person, practice)), via="referral"
    )


def open_reconciliation(
    actor: User, referral: Referral, patient: Patient, person: PatientDetails
) -> PatientReconciliation:
    """Keep what a referral from outside the person's scope sent, beside the untouched record,
    for a link worker to reconcile. The audit entry names the fields, never their values."""
    sent = sent_values(person, referral.gp_practice)
    fields = list(proposed_changes(patient, sent))
    task = PatientReconciliation(
        referral=referral,
        patient=patient,
        sent=sent,
        fields=fields,
        status=ReconciliationStatus.OPEN if fields else ReconciliationStatus.RESOLVED,
        decisions={},
    )
    db.session.add(task)
    db.session.flush()
    record(
        actor,
        "patient.reconciliation_opened",
        task,
        referral_id=referral.id,
        patient_id=patient.id,
        fields=fields,
    )
    return task


def resolve_reconciliation(
    actor: User, task: PatientReconciliation, accepted: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Apply the accepted differences to the stored person and keep the rest as stored.

    Audited twice in the same transaction: the change to the person (old and new values) and
    the decision on every difference (the stored and sent values of those kept).
    """
    # Locked on PostgreSQL, so two link workers resolving at once cannot both apply theirs.
    db.session.refresh(task, with_for_update=True)
    if not task.is_open:
        raise ReconciliationRefused("These details have already been checked")
    unknown = set(accepted) - set(task.fields)
    if unknown:
        raise ReconciliationRefused("Choose only among the details that differ")
    stored = stored_values(task.patient)
    changed = change_person(
        actor,
        task.patient,
        {name: task.sent[name] for name in task.fields if name in accepted},
        via="reconciliation",
        referral_id=task.referral_id,
    )
    task.decisions = {name: "accepted" if name in accepted else "kept" for name in task.fields}
    task.status = ReconciliationStatus.RESOLVED
    task.resolved_at = utcnow()
    task.resolved_by_id = actor.id
    record(
        actor,
        "patient.reconciled",
        task,
        referral_id=task.referral_id,
        patient_id=task.patient_id,
        accepted=changed,
        kept={
            name: {"stored": stored[name], "sent": task.sent[name]}
            for name in task.fields
            if name not in accepted
        },
    )
    return changed


@dataclass(frozen=True)
class PersonAsSent:
    """The person as a referring practice described them, shown in place of a stored record
    that the practice may not see. Reads like a `Patient` on pages, letters and the API."""

    id: int
    nhs_number: str | None
    given_name: str
    family_name: str
    date_of_birth: date | None
    sex: Sex
    ethnicity: Ethnicity
    postcode: str | None
    phone: str | None
    email: str | None
    preferred_contact: ContactMethod
    communication_needs: str
    access_needs: str
    gp_practice: Organisation
    gp_practice_id: int

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @classmethod
    def of(cls, task: PatientReconciliation, practice: Organisation) -> PersonAsSent:
        values = {name: _model_value(name, task.sent.get(name)) for name in PERSON_FIELDS}
        values["gp_practice_id"] = practice.id
        return cls(
            id=task.patient_id,
            nhs_number=task.patient.nhs_number,
            gp_practice=practice,
            **values,
        )


def name_as_sent(sent: dict[str, Any]) -> str:
    """A person's full name as their practice sent it (`PersonAsSent.full_name`)."""
    given, family = (_model_value(name, sent.get(name)) for name in ("given_name", "family_name"))
    return f"{given} {family}"


def person_as_referred(referral: Referral) -> Patient | PersonAsSent:
    """The person as the referring practice knows them: the stored record when they are
    registered with that practice, otherwise the details the practice sent with the referral."""
    patient = referral.patient
    task = referral.reconciliation
    if patient.gp_practice_id == referral.gp_practice_id or task is None:
        return patient
    return PersonAsSent.of(task, referral.gp_practice)


def person_seen_by(user: Any, referral: Referral) -> Patient | PersonAsSent:
    """The person on a referral as this user may see them: the stored record within their
    scope, otherwise as the referring practice knows them."""
    if sees_patient(user, referral.patient):
        return referral.patient
    return person_as_referred(referral)


@dataclass(frozen=True)
class Difference:
    """A detail a reconciliation concerns, as read on the page: stored now and as sent."""

    name: str
    label: str
    stored: str
    sent: str
    decision: str = ""


def differences(task: PatientReconciliation) -> list[Difference]:
    stored = stored_values(task.patient)
    return [
        Difference(
            name,
            FIELD_LABELS[name],
            display_value(name, stored[name]),
            display_value(name, task.sent.get(name)),
            (task.decisions or {}).get(name, ""),
        )
        for name in task.fields
    ]


def display_value(name: str, value: Any) -> str:
    """A stored or sent detail as a person reads it."""
    if value in (None, ""):
        return "Not given"
    if name == "gp_practice_id":
        practice = db.session.get(Organisation, value)
        return practice.name if practice is not None else "Unknown practice"
    if name == "date_of_birth":
        return date.fromisoformat(value).strftime("%-d %B %Y")
    if name in _ENUMS:
        return str(getattr(_ENUMS[name](value), "label", value))
    return str(value)
