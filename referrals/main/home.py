"""What each role's home page shows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, User
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
from referrals.notifications.services import inbox_query
from referrals.reports.queries import contract_summaries


def home_context(user: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "recent_messages": db.session.execute(inbox_query(user).limit(5)).all(),
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
        return {
            "all_referrals": db.session.scalar(
                select(func.count()).select_from(Referral).where(referral_scope(user))
            ),
            "recent_referrals": listed_referrals(
                db.session.scalars(
                    practice_query(user).with_only_columns(Referral.id).limit(5)
                ).all(),
                user,
            ),
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
