"""The caseload and practice lists: filtered, ordered and eager-loaded in bounded queries."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from referrals.extensions import db
from referrals.intake.lifecycle import OPEN_STATUSES, Status
from referrals.intake.models import (
    ContactAttempt,
    Conversation,
    Patient,
    Referral,
    ReferralTransition,
)
from referrals.intake.scope import patient_scope, referral_scope, scoped_referrals
from referrals.pagination import by_key
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


def is_overdue(referral: Referral, today: date) -> bool:
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


# What each list shows of a referral, loaded with the page's rows in the same statement.
CASELOAD_LOADERS = (
    joinedload(Referral.patient),
    joinedload(Referral.gp_practice),
    joinedload(Referral.assigned_to),
)
# A practice's list names each person as the practice knows them, which for someone registered
# elsewhere is what the practice sent (kept with the referral's reconciliation).
PRACTICE_LIST_LOADERS = (
    joinedload(Referral.patient),
    joinedload(Referral.referred_by),
    joinedload(Referral.reconciliation),
)


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


def referrals_by_id(ids: Sequence[int], loaders: Sequence[Any]) -> list[Referral]:
    """The referrals with these ids, in this order, with what a list shows of them."""
    found = db.session.scalars(select(Referral).where(Referral.id.in_(ids)).options(*loaders))
    return by_key(ids, list(found))


def other_referrals(user: Any, referral: Referral) -> list[Referral]:
    """The person's other referrals that the user may see, newest first."""
    return list(
        db.session.scalars(
            scoped_referrals(user)
            .where(Referral.patient_id == referral.patient_id, Referral.id != referral.id)
            .order_by(Referral.received_on.desc(), Referral.id.desc())
        )
    )
