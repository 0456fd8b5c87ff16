"""What each role's home page shows."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select, bindparam, func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, Role, User
from referrals.courses.queries import my_sessions
from referrals.extensions import db
from referrals.intake.lifecycle import OPEN_STATUSES, Status
from referrals.intake.models import Referral
from referrals.intake.queries import (
    CaseloadFilters,
    caseload_query,
    listed_referrals,
    practice_query,
)
from referrals.intake.scope import referral_scope
from referrals.notifications.services import latest_messages
from referrals.reports.queries import contract_summaries


def home_context(user: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "recent_messages": latest_messages(user, 5),
    }
    if user.role == "admin":
        context.update(_admin_overview())
    if user.role in ("referrer", "link_worker", "admin"):
        context.update(referral_overview(user))
    if user.role == "artist":
        context["sessions"] = my_sessions(user, clock.today())
    if user.role == "commissioner":
        context["contract_summaries"] = contract_summaries(user)
    return context


def referral_overview(user: Any) -> dict[str, Any]:
    """What the home page counts of the referrals in the user's scope, and the latest ones.

    Every count is bounded by an index range that does not grow with the referrals ever made:
    a practice's own referrals (`ix_referral_gp_practice_id_received_on`), or for link workers
    and admins only the open ones (`ix_referral_status_received_on`), never every referral.
    """

    if user.role == "referrer":
        count, latest = _practice_statements()
        practice = {"practice_id": user.organisation_id}
        return {
            "all_referrals": db.session.scalar(count, practice),
            "recent_referrals": listed_referrals(db.session.scalars(latest, practice).all(), user),
        }
    open_by_status = dict(
        db.session.execute(
            select(Referral.status, func.count())
            .where(referral_scope(user), Referral.status.in_(tuple(OPEN_STATUSES)))
            .group_by(Referral.status)
        ).all()
    )
    return {
        "open_referrals": sum(open_by_status.values()),
        "new_referrals": open_by_status.get(Status.RECEIVED, 0),
        "my_caseload": db.session.scalar(
            select(func.count()).select_from(
                caseload_query(user, CaseloadFilters(mine=True)).order_by(None).subquery()
            )
        ),
    }


@cache
def _practice_statements() -> tuple[Select[Any], Select[Any]]:
    """A GP's home page statements (the practice's referrals counted, and its five latest),
    built once per process from the referrer's own scope: only the practice changes."""
    referrer = SimpleNamespace(role=Role.REFERRER, organisation_id=bindparam("practice_id"))
    return (
        select(func.count()).select_from(Referral).where(referral_scope(referrer)),
        practice_query(referrer).with_only_columns(Referral.id).limit(5),
    )


def _admin_overview() -> dict[str, Any]:
    organisations_by_kind = dict(
        db.session.execute(
            select(Organisation.kind, func.count())
            .where(Organisation.active.is_(True))
            .group_by(Organisation.kind)
        ).all()
    )
    users_by_role = dict(
        db.session.execute(
            select(User.role, func.count()).where(User.active.is_(True)).group_by(User.role)
        ).all()
    )
    recent_events = db.session.scalars(
        select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(8)
    ).all()
    return {
        "organisations_by_kind": organisations_by_kind,
        "users_by_role": users_by_role,
        "recent_events": recent_events,
    }
