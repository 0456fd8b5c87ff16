"""The caseload and practice lists: filtered, ordered and eager-loaded in bounded queries."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any, ClassVar

from sqlalchemy import Select, and_, bindparam, case, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from referrals.auth.models import Organisation, User
from referrals.extensions import db
from referrals.intake.identity import name_as_sent
from referrals.intake.lifecycle import OPEN_STATUSES, Status
from referrals.intake.models import (
    ContactAttempt,
    Conversation,
    Patient,
    PatientReconciliation,
    Referral,
    ReferralTransition,
)
from referrals.intake.scope import patient_scope, referral_scope, scoped_referrals, sees_patient
from referrals.pagination import by_key
from referrals.vocab import Pathway
from referrals.workdays import add_working_days

FIRST_CONTACT_WORKING_DAYS = 5


@dataclass(frozen=True)
class CaseloadFilters:
    statuses: tuple[Status, ...] = ()
    practice_id: int | None = None
    pathway: str | None = None
    mine: bool = False
    search: str = ""


def contact_due_by(received_on: date) -> date:
    return add_working_days(received_on, FIRST_CONTACT_WORKING_DAYS)


def is_overdue(referral: Referral | ListedReferral, today: date) -> bool:
    """Not contacted within 5 working days of being received."""
    return (
        referral.first_contact_at is None
        and referral.status is Status.RECEIVED
        and contact_due_by(referral.received_on) < today
    )


def search_kind(text: str) -> str:
    """What a list's search term is taken as: "nhs_number", "referral_id" or "name"."""
    if re.fullmatch(r"\d{10}", re.sub(r"[\s-]", "", text)):
        return "nhs_number"
    if re.fullmatch(r"[Rr]?\d{1,9}", text.strip()):
        return "referral_id"
    return "name"


def _search_clause(text: str, user: Any) -> Any:
    kind = search_kind(text)
    if kind == "nhs_number":
        return Patient.nhs_number == re.sub(r"[\s-]", "", text)
    if kind == "referral_id":
        return Referral.id == int(text.strip().lstrip("Rr"))
    terms = [t for t in re.split(r"\s+", text.strip().lower()) if t][:4]
    by_name = (
        func.lower(Patient.given_name + " " + Patient.family_name).contains(" ".join(terms))
        if len(terms) > 1
        else or_(
            func.lower(Patient.given_name).startswith(terms[0]),
            func.lower(Patient.family_name).startswith(terms[0]),
        )
    )
    # Names are matched only on records the user may see, so a search never tells a practice
    # what another practice's record says.
    return and_(by_name, patient_scope(user))


# What a referral's own page shows: the person, who referred and holds it, its history with
# who recorded each step, and a reconciliation task: in four statements, none as it renders.
REFERRAL_PAGE_LOADERS = (
    joinedload(Referral.patient).joinedload(Patient.gp_practice),
    joinedload(Referral.gp_practice),
    joinedload(Referral.referred_by),
    joinedload(Referral.assigned_to),
    joinedload(Referral.reconciliation),
    selectinload(Referral.transitions).joinedload(ReferralTransition.actor),
    selectinload(Referral.contact_attempts).joinedload(ContactAttempt.actor),
    selectinload(Referral.conversations).joinedload(Conversation.actor),
)


def _searched(query: Select[Any], search: str, user: Any) -> Select[Any]:
    # The person's table is joined only to search it: the lists' filters and order are all on
    # the referral, so without a search the ordered query never leaves the referral table.
    if not search.strip():
        return query
    return query.join(Referral.patient).where(_search_clause(search, user))


def caseload_query(user: Any, filters: CaseloadFilters) -> Select[Any]:
    """New referrals first, flagged ones next, then oldest first."""
    query = select(Referral).where(referral_scope(user))
    statuses = filters.statuses or tuple(OPEN_STATUSES)
    query = query.where(Referral.status.in_(statuses))
    if filters.practice_id:
        query = query.where(Referral.gp_practice_id == filters.practice_id)
    if filters.pathway:
        query = query.where(Referral.pathway == filters.pathway)
    if filters.mine:
        query = query.where(Referral.assigned_to_id == user.id)
    return _searched(query, filters.search, user).order_by(
        case((Referral.status == Status.RECEIVED, 0), else_=1),
        Referral.risk_flag.desc(),
        Referral.received_on,
        Referral.id,
    )


def practice_query(user: Any, search: str = "", status: str | None = None) -> Select[Any]:
    """A practice's referrals, newest first."""
    query = select(Referral).where(referral_scope(user))
    if status == "open":
        query = query.where(Referral.status.in_(OPEN_STATUSES))
    elif status == "closed":
        query = query.where(Referral.status.not_in(OPEN_STATUSES))
    return _searched(query, search, user).order_by(Referral.received_on.desc(), Referral.id.desc())


@dataclass(frozen=True)
class ListedReferral:
    """One row of a referral list: only the columns the caseload and a practice's list show,
    read by a Core select (no ORM objects). Audit entries name it as the referral it is."""

    __tablename__: ClassVar[str] = "referral"

    id: int
    patient_id: int
    received_on: date
    pathway: Pathway
    status: Status
    risk_flag: bool
    first_contact_at: datetime | None
    person_name: str  # as the signed-in user may see the person (`person_seen_by`)
    practice_name: str
    link_worker_name: str | None


@cache
def _listed_statement() -> Select[*tuple[Any, ...]]:
    """The list rows' statement, built once per process: only the ids change between pages."""
    return (
        select(
            Referral.id,
            Referral.patient_id,
            Referral.received_on,
            Referral.pathway,
            Referral.status,
            Referral.risk_flag,
            Referral.first_contact_at,
            Referral.gp_practice_id,
            Patient.given_name,
            Patient.family_name,
            Patient.gp_practice_id.label("registered_at"),
            PatientReconciliation.sent,
            Organisation.name.label("practice_name"),
            User.name.label("link_worker_name"),
        )
        .join(Patient, Patient.id == Referral.patient_id)
        .join(Organisation, Organisation.id == Referral.gp_practice_id)
        .outerjoin(PatientReconciliation, PatientReconciliation.referral_id == Referral.id)
        .outerjoin(User, User.id == Referral.assigned_to_id)
        .where(Referral.id.in_(bindparam("ids", expanding=True)))
    )


def listed_referrals(ids: Sequence[int], user: Any) -> list[ListedReferral]:
    """The list rows of the referrals with these ids, in this order, in one statement."""
    found = db.session.execute(_listed_statement(), {"ids": list(ids)}).all()

    def person_name(row: Any) -> str:
        # `person_seen_by`: the stored record within the user's scope, otherwise the person as
        # the referring practice knows them.
        registered = SimpleNamespace(gp_practice_id=row.registered_at)
        if (
            sees_patient(user, registered)  # type: ignore[arg-type]
            or row.registered_at == row.gp_practice_id
            or row.sent is None
        ):
            return f"{row.given_name} {row.family_name}"
        return name_as_sent(row.sent)

    rows = [
        ListedReferral(
            id=row.id,
            patient_id=row.patient_id,
            received_on=row.received_on,
            pathway=row.pathway,
            status=row.status,
            risk_flag=row.risk_flag,
            first_contact_at=row.first_contact_at,
            person_name=person_name(row),
            practice_name=row.practice_name,
            link_worker_name=row.link_worker_name,
        )
        for row in found
    ]
    return by_key(ids, rows)


def other_referrals(user: Any, referral: Referral) -> list[Referral]:
    """The person's other referrals that the user may see, newest first."""
    return list(
        db.session.scalars(
            scoped_referrals(user)
            .where(Referral.patient_id == referral.patient_id, Referral.id != referral.id)
            .order_by(Referral.received_on.desc(), Referral.id.desc())
        )
    )
